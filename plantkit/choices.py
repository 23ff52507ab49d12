"""Names and values that several layers share, kept free of torch, keras, pandas and h5py so
the CLI can check options against them before importing any of those."""

from enum import Enum


class Choice(str, Enum):
    """A closed set of option values. The CLI types its options with these (so --help lists
    them and click refuses others); the library takes the plain strings (`Choice.value`).
    Members are listed on one line: `a, b = "a", "b"`."""

    def __str__(self) -> str:
        return self.value


def _values(choice: type[Choice]) -> tuple[str, ...]:
    return tuple(member.value for member in choice)


class Split(Choice):
    """A dataset's splits, in this order."""

    train, val, test = "train", "val", "test"


class Sampler(Choice):
    """Training samplers (plantkit.data.loading)."""

    none, inverse, sqrt, balanced, progressive = (
        "none", "inverse", "sqrt", "balanced", "progressive")


class Source(Choice):
    """Libraries that build a backbone (plantkit.models.registry)."""

    timm, torchvision = "timm", "torchvision"


class LogitsDtype(Choice):
    """How a prediction store may keep logits."""

    float32, float16 = "float32", "float16"


class Loss(Choice):
    """Training losses (plantkit.training.losses)."""

    ce, weighted, balanced_softmax, logit_adjusted, class_balanced, focal, ldam = (
        "ce", "weighted", "balanced-softmax", "logit-adjusted", "class-balanced", "focal", "ldam")


# The losses' own options (`plantkit train --tau / --beta / --focal-gamma`) and their
# defaults: an option given with another --loss is refused (it would change nothing).
LOSS_OPTIONS = {
    "logit-adjusted": {"tau": 1.0},
    "class-balanced": {"beta": 0.999, "focal_gamma": 0.0},  # Cui et al.: gamma 0 is plain CB
    "focal": {"focal_gamma": 2.0},  # Lin et al.'s value
}
# Losses whose class weights `--defer-epoch` switches on at that epoch (DRW).
REWEIGHTING_LOSSES = ("weighted", "class-balanced", "ldam")


class LrScale(Choice):
    """How `plantkit train --lr-scale` adapts --lr to the global batch."""

    none, linear = "none", "linear"


class CacheFormat(Choice):
    """How `plantkit data cache` stores the resized images (plantkit.data.cache)."""

    jpeg, raw = "jpeg", "raw"


class Profile(Choice):
    """Class-count profiles (plantkit.data.profiles)."""

    plantnet300k, uniform, zipf = "plantnet300k", "uniform", "zipf"


class Normalization(Choice):
    """Named mean/std of `plantkit import plantnet` (plantkit.models.plantnet_import)."""

    imagenet, plantnet300k = "imagenet", "plantnet300k"


class Space(Choice):
    """What `plantkit combine --average` averages."""

    probs, logits = "probs", "logits"


class WeightRule(Choice):
    """`plantkit combine --weighted`'s rule."""

    fit, accuracy = "fit", "accuracy"


class RouterInput(Choice):
    """What the router of `plantkit combine --router` reads."""

    features, confidences = "features", "confidences"


class GreedyMetric(Choice):
    """What `plantkit combine --greedy` optimises on val."""

    nll, top1 = "nll", "top1"


class AdjustTarget(Choice):
    """What a tau picked on val maximises (`plantkit combine --logit-adjust auto`, `--tau-norm`)."""

    top1, macro = "top1", "macro"


SPLITS = _values(Split)
SAMPLERS = _values(Sampler)
SOURCES = _values(Source)
LOGITS_DTYPES = _values(LogitsDtype)
LOSSES = _values(Loss)
LR_SCALES = _values(LrScale)
CACHE_FORMATS = _values(CacheFormat)
PROFILES = _values(Profile)
NORMALIZATION_NAMES = _values(Normalization)
SPACES = _values(Space)
WEIGHT_RULES = _values(WeightRule)
ROUTER_INPUTS = _values(RouterInput)
GREEDY_METRICS = _values(GreedyMetric)
ADJUST_TARGETS = _values(AdjustTarget)

# The reference study's many/medium/few-shot classes: many > 100 train images, few < 20,
# medium 20..100 inclusive (plantkit.metrics.shot_buckets and plantkit.data.eda count them).
MANY_SHOT_ABOVE = 100
FEW_SHOT_BELOW = 20
# The same in words, by bucket (tables, the report, docs).
SHOT_RULES = {"many": f"> {MANY_SHOT_ABOVE} train images",
              "medium": f"{FEW_SHOT_BELOW}-{MANY_SHOT_ABOVE}", "few": f"< {FEW_SHOT_BELOW}"}
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
