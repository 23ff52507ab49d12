"""Names and values that several layers share, kept free of torch, keras, pandas and h5py so
the CLI can check options against them before importing any of those."""

SPLITS = ("train", "val", "test")  # a dataset's splits, in this order
SAMPLERS = ("none", "inverse")  # training samplers (plantkit.data.loading)
SOURCES = ("timm", "torchvision")  # libraries that build a backbone (plantkit.models.registry)
LOGITS_DTYPES = ("float32", "float16")  # how a prediction store may keep logits
# ImageNet's normalisation: that of timm's and torchvision's pretrained weights and of the
# released Pl@ntNet-300K models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Image-loading and evaluating processes when --workers is not given: one per core, at most
# this many (more rarely helps on the small images of a stand-in, and costs memory).
MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """The --workers of every command that leaves it unset."""
    import os

    return min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1)
