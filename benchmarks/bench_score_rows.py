"""metrics.score_rows (the report's hot loop) against the same numbers from scipy and plain
NumPy calls on a whole chunk, in one run: why plantkit keeps its own blocked softmax.

score_rows scores a chunk of float16 logits in blocks of 512 rows (a block's dozen passes stay
in the CPU's cache), takes the softmax in place and -log p in log-sum-exp form, and counts
booleans per row as bytes. The baseline computes the same per-row numbers the direct way:
scipy.special.softmax over the whole float32 chunk, np.count_nonzero(axis=1) for ranks and
set sizes. Both are checked to agree (ranks and set sizes exactly, probabilities to 1e-6).

    .venv/bin/python benchmarks/bench_score_rows.py [--rows 4096] [--classes 1081] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from scipy import special

from plantkit.metrics import score_rows

THRESHOLDS = {1: 0.3, 3: 0.05, 5: 0.02, 10: 0.01}


def direct(logits16: np.ndarray, labels: np.ndarray) -> dict:
    """The per-row numbers of score_rows, computed on the whole chunk with library calls."""
    scores = logits16.astype(np.float32)
    if not np.isfinite(scores).all():
        raise ValueError("not finite")
    rows = np.arange(len(labels))
    true = scores[rows, labels]
    rank = np.count_nonzero(~(scores < true[:, None]), axis=1) - 1
    pred = scores.argmax(axis=1)
    probs = special.softmax(scores, axis=1)
    p_true = probs[rows, labels]
    nll = special.logsumexp(scores, axis=1) - true
    sizes = {k: np.count_nonzero(probs >= t, axis=1) for k, t in THRESHOLDS.items()}
    return {"rank": rank, "pred": pred, "p_true": p_true, "conf": probs[rows, pred],
            "nll": nll, "sizes": sizes}


def timed(function, repeats: int) -> float:
    function()  # warm
    begin = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - begin) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096, help="rows of the chunk (a store's)")
    parser.add_argument("--classes", type=int, default=1081)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((args.rows, args.classes))).astype(np.float16)
    labels = rng.integers(0, args.classes, args.rows)

    ours = score_rows(logits, labels, thresholds=THRESHOLDS)
    theirs = direct(logits, labels)
    assert np.array_equal(ours.rank, theirs["rank"]) and np.array_equal(ours.pred, theirs["pred"])
    for k in THRESHOLDS:
        assert np.array_equal(ours.set_size[k], theirs["sizes"][k]), k
    for key in ("p_true", "conf"):
        np.testing.assert_allclose(getattr(ours, key), theirs[key], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.nll, theirs["nll"], rtol=1e-5, atol=1e-5)

    baseline = timed(lambda: direct(logits, labels), args.repeats)
    blocked = timed(lambda: score_rows(logits, labels, thresholds=THRESHOLDS), args.repeats)
    print(f"machine: {os.cpu_count()} cores; chunk {args.rows:,} x {args.classes:,} float16, "
          f"{len(THRESHOLDS)} average-k thresholds; same numbers checked")
    print(f"baseline (scipy softmax, count_nonzero, whole chunk): {1000 * baseline:7.1f} ms")
    print(f"score_rows (512-row blocks, in place):               {1000 * blocked:7.1f} ms "
          f"({baseline / blocked:.2f}x faster)")


if __name__ == "__main__":
    main()
