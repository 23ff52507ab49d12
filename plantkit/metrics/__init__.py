"""Pure NumPy metrics for stored predictions: top-k, macro, average-k, buckets, calibration.

Streaming design: `score_rows` reduces each chunk of logits (rows x classes) to a few per-row
numbers (`RowScores`: rank of the true class, its probability, NLL, top-1 confidence, set
sizes); every metric is then computed from those N-long arrays, so no N x C array is ever
held whole. `evaluate_store` runs the whole evaluation of a prediction store.

The vocabulary every command uses (train's summary, combine's tables, weights and
combination.json, report, the demo's verdicts); nothing else in plantkit defines these:

- a hit: `true_class_rank` (the rank of the true class is the number of *other* classes
  that score at least as high, so a tie is never counted in the model's favour), top-k a
  hit when rank < k (`topk_hits`, `RowScores.hits`). Not argmax: argmax lets the lowest
  index win a tie, scikit-learn's `top_k_accuracy_score` the highest; all agree whenever
  scores are distinct;
- per-class top-1 and macro: `per_class_recall` (scikit-learn's recall of the tie-rule
  predictions), `per_class_topk`, `macro_mean` (mean over the classes present),
  `accuracy_scores`, `split_scores`, `split_accuracy`;
- average-k (`average_k_thresholds`), the shot buckets (`MANY_SHOT_ABOVE`,
  `FEW_SHOT_BELOW`, `SHOT_RULES`, `shot_buckets`), `softmax` / `log_softmax` (scipy's),
  the k list (`DEFAULT_KS`, `parse_ks`) and the JSON form of results (`to_plain`).

Definitions: docs/metrics.md.
"""

from plantkit.choices import FEW_SHOT_BELOW, MANY_SHOT_ABOVE, SHOT_RULES
from plantkit.metrics.accuracy import (
    ABOVE_ACCURACY,
    accuracy_scores,
    average_k_accuracy,
    macro_average_k_accuracy,
    macro_mean,
    macro_topk_accuracy,
    mean_set_size,
    nll_mean,
    per_class_accuracy,
    per_class_mean,
    per_class_recall,
    per_class_topk,
    shot_accuracy,
    shot_buckets,
    shot_class_counts,
    shot_summary,
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
    PER_CLASS_TOP_K,
    class_image_counts,
    evaluate_store,
    evaluation_rows,
    parse_ks,
    score_split,
    split_accuracy,
    split_scores,
    summarise_split,
)
from plantkit.metrics.jsonform import to_plain
from plantkit.metrics.rows import (
    RowScores,
    log_softmax,
    score_rows,
    softmax,
    topk_hits,
    true_class_rank,
)
from plantkit.metrics.views import COUNT_BIN_EDGES, accuracy_by_count, count_by_accuracy_bin

__all__ = [
    "ABOVE_ACCURACY", "COUNT_BIN_EDGES", "DEFAULT_AVG_KS", "DEFAULT_KS", "ECE_BINS",
    "FEW_SHOT_BELOW", "MANY_SHOT_ABOVE", "PER_CLASS_TOP_K", "SHOT_RULES", "RowScores", "TopValues",
    "accuracy_by_count", "accuracy_scores", "average_k_accuracy", "average_k_threshold",
    "average_k_thresholds", "bootstrap_ci", "class_image_counts", "count_by_accuracy_bin",
    "ece", "evaluate_store", "evaluation_rows", "float32_at_least", "log_softmax",
    "macro_average_k_accuracy", "macro_mean", "macro_topk_accuracy", "mean_set_size",
    "nll_mean", "parse_ks", "per_class_accuracy", "per_class_mean", "per_class_recall",
    "per_class_topk", "reliability_bins", "score_rows", "score_split", "shot_accuracy",
    "shot_buckets", "shot_class_counts", "shot_summary", "softmax", "species_above",
    "split_accuracy", "split_scores", "summarise_split", "to_plain", "topk_accuracy",
    "topk_hits", "true_class_rank",
]
