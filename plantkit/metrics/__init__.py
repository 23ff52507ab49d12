"""Pure NumPy metrics for stored predictions: top-k, macro, average-k, buckets, calibration.

Streaming design: `score_rows` reduces each chunk of logits (rows x classes) to a few per-row
numbers (`RowScores`: rank of the true class, its probability, NLL, top-1 confidence, set
sizes); every metric is then computed from those N-long arrays, so no N x C array is ever
held whole. `evaluate_store` runs the whole evaluation of a prediction store.

Tie rule for top-k: the rank of the true class is the number of *other* classes that score
at least as high, so a tie is never counted in the model's favour; top-k is a hit when
rank < k. scikit-learn's `top_k_accuracy_score` lets the highest class index win a tie
instead; both agree whenever scores are distinct. Definitions: docs/metrics.md.
"""

from plantkit.metrics.accuracy import (
    ABOVE_ACCURACY,
    FEW_SHOT_BELOW,
    MANY_SHOT_ABOVE,
    average_k_accuracy,
    macro_average_k_accuracy,
    macro_topk_accuracy,
    mean_set_size,
    nll_mean,
    per_class_accuracy,
    per_class_mean,
    shot_accuracy,
    shot_buckets,
    species_above,
    topk_accuracy,
)
from plantkit.metrics.average_k import (
    TopValues,
    average_k_threshold,
    average_k_thresholds,
    float32_at_least,
)
from plantkit.metrics.bootstrap import bootstrap_ci
from plantkit.metrics.calibration import ECE_BINS, ece, reliability_bins
from plantkit.metrics.evaluate import (
    DEFAULT_AVG_KS,
    DEFAULT_KS,
    class_image_counts,
    evaluate_store,
    evaluation_rows,
    score_split,
    summarise_split,
)
from plantkit.metrics.rows import RowScores, score_rows, softmax
from plantkit.metrics.views import COUNT_BIN_EDGES, accuracy_by_count, count_by_accuracy_bin

__all__ = [
    "ABOVE_ACCURACY", "COUNT_BIN_EDGES", "DEFAULT_AVG_KS", "DEFAULT_KS", "ECE_BINS",
    "FEW_SHOT_BELOW", "MANY_SHOT_ABOVE", "RowScores", "TopValues", "accuracy_by_count",
    "average_k_accuracy", "average_k_threshold", "average_k_thresholds", "bootstrap_ci",
    "class_image_counts", "count_by_accuracy_bin", "ece", "evaluate_store", "evaluation_rows",
    "float32_at_least", "macro_average_k_accuracy", "macro_topk_accuracy", "mean_set_size",
    "nll_mean", "per_class_accuracy", "per_class_mean", "reliability_bins", "score_rows",
    "score_split", "shot_accuracy", "shot_buckets", "softmax", "species_above",
    "summarise_split", "topk_accuracy",
]
