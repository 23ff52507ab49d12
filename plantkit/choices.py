"""Names and values that several layers share, kept free of torch, keras, pandas and h5py so
the CLI can check options against them before importing any of those."""

SPLITS = ("train", "val", "test")  # a dataset's splits, in this order
SAMPLERS = ("none", "inverse")  # training samplers (plantkit.data.loading)
SOURCES = ("timm", "torchvision")  # libraries that build a backbone (plantkit.models.registry)
LOGITS_DTYPES = ("float32", "float16")  # how a prediction store may keep logits
LOSSES = ("ce", "weighted")  # training losses (plantkit.training.losses)
PROFILES = ("plantnet300k", "uniform", "zipf")  # class-count profiles (plantkit.data.profiles)
# plantkit combine (plantkit.combine): what --average averages, --weighted's rule, the
# router's input, what --greedy optimises and what auto logit adjustment maximises.
SPACES = ("probs", "logits")
WEIGHT_RULES = ("fit", "accuracy")
ROUTER_INPUTS = ("features", "confidences")
GREEDY_METRICS = ("nll", "top1")
ADJUST_TARGETS = ("top1", "macro")
# ImageNet's normalisation: that of timm's and torchvision's pretrained weights and of the
# released Pl@ntNet-300K models.
# The reference study's many/medium/few-shot classes: many > 100 train images, few < 20,
# medium 20..100 inclusive (plantkit.metrics.shot_buckets and plantkit.data.eda count them).
MANY_SHOT_ABOVE = 100
FEW_SHOT_BELOW = 20
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Image-loading and evaluating processes when --workers is not given: one per core, at most
# this many (more rarely helps on the small images of a stand-in, and costs memory).
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """The --workers of every command that leaves it unset."""
    import os

    return min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)
