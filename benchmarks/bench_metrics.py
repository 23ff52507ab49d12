"""Metrics throughput: evaluate_store on a Pl@ntNet-300K-sized store, and sklearn's top-k vs ours.

Writes a float16 store (test 31,112 x 1,081 rows in the real per-species test counts, val
31,118, real train counts) to a temporary folder, then prints:
- evaluate_store (top-k, macro, average-k fitted on val, ECE, bootstrap) seconds, rows/s,
  peak traced memory and the process's peak RSS, and the time for --experts such stores;
- scikit-learn's top_k_accuracy_score for each k over the whole test array vs plantkit's
  path (score_rows over chunks, then every k), and the ratio, on the same in-memory logits;
- per-class top-1 with scikit-learn's recall_score (plantkit's code path) vs plantkit's own
  bincount, the ratio, per-class top-3 (plantkit only), and sklearn.metrics' import time.

    .venv/bin/python benchmarks/bench_metrics.py [--test-rows 31112] [--val-rows 31118]
        [--bootstrap 1000] [--chunk-rows 4096] [--rounds 3] [--experts 26]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from plantkit import metrics
from plantkit.data.profiles import plantnet300k_table, split_counts
from plantkit.store import StoreWriter, open_store


def long_tail_labels(counts: np.ndarray, n_rows: int, rng) -> np.ndarray:
    """n_rows labels in class order, about proportional to counts (every class at least once)."""
    if n_rows == counts.sum():
        return np.repeat(np.arange(len(counts)), counts)
    extra = rng.choice(len(counts), size=n_rows - len(counts), p=counts / counts.sum())
    return np.sort(np.concatenate([np.arange(len(counts)), extra]))


def synthetic_logits(labels: np.ndarray, num_classes: int, rng, chunk_rows: int = 4096):
    """(start, float32 chunk) pairs: noise plus a per-row boost of the true class (~70 % top-1)."""
    for start in range(0, len(labels), chunk_rows):
        y = labels[start:start + chunk_rows]
        logits = rng.normal(0.0, 1.5, size=(len(y), num_classes)).astype(np.float32)
        logits[np.arange(len(y)), y] += rng.gamma(2.0, 2.5, size=len(y)).astype(np.float32)
        yield start, logits


def write_store(path: Path, test_rows: int, val_rows: int, seed: int = 0) -> None:
    table = plantnet300k_table()
    counts = split_counts(table.count_total.to_numpy(), table.count_test.to_numpy())
    num_classes = len(table)
    rng = np.random.default_rng(seed)
    labels = {
        "val": long_tail_labels(counts["val"].to_numpy(), val_rows, rng),
        "test": long_tail_labels(counts["test"].to_numpy(), test_rows, rng),
    }
    with StoreWriter(path, name="bench", class_ids=table.species_id.tolist(),
                     fingerprint="bench:synthetic", train_counts=counts["train"].to_numpy(),
                     attrs={"architecture": "synthetic"}) as writer:
        for split, y in labels.items():
            split_writer = writer.create_split(split, n_rows=len(y), dtype="float16")
            for start, chunk in synthetic_logits(y, num_classes, rng):
                split_writer.write(start, chunk, y[start:start + len(chunk)])


def time_it(run, rounds: int) -> tuple[float, object]:
    seconds, result = [], None
    for _ in range(rounds):
        begin = time.perf_counter()
        result = run()
        seconds.append(time.perf_counter() - begin)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-rows", type=int, default=31112)
    parser.add_argument("--val-rows", type=int, default=31118)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--chunk-rows", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--experts", type=int, default=26,
                        help="Stores of this size the report would evaluate (extrapolated).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "predictions.h5"
        begin = time.perf_counter()
        write_store(path, args.test_rows, args.val_rows)
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"store written in {time.perf_counter() - begin:.1f} s: "
              f"{path.stat().st_size / 2**20:.0f} MiB (float16)")

        with open_store(path) as store:
            rows_read = metrics.evaluation_rows(store)

            def evaluate(bootstrap: int = args.bootstrap):
                return metrics.evaluate_store(store, bootstrap=bootstrap,
                                              chunk_rows=args.chunk_rows)

            seconds, result = time_it(evaluate, args.rounds)
            no_boot, _ = time_it(lambda: evaluate(0), args.rounds)
            tracemalloc.start()
            evaluate()
            _, traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            test_labels = store.labels("test")
            test_logits = store.logits("test")

        test = result["splits"]["test"]
        print(f"evaluate_store (val+test, avg-k {result['avg_ks']}, bootstrap "
              f"{args.bootstrap}): {seconds:.2f} s, {rows_read / seconds:,.0f} rows/s read "
              f"({rows_read:,} rows: val and test once each); without bootstrap {no_boot:.2f} s")
        print(f"  x {args.experts} such stores: about {seconds * args.experts:.0f} s "
              f"({no_boot * args.experts:.0f} s without bootstrap)")
        print(f"  peak traced memory {traced_peak / 2**20:.0f} MiB; process peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB "
              "(includes writing the store and the whole test array loaded below)")
        print(f"  test top-1 {test['top1']:.3f}, macro top-1 {test['macro_top1']:.3f}, "
              f"avg-3 {test['avg3']:.3f} (set size {test['avg3_set_size']:.2f}), "
              f"ECE {test['ece']:.3f}, bootstrap top-1 {test['bootstrap']['top1']}")

        compare_with_sklearn(test_logits, test_labels, result["ks"], args.chunk_rows,
                             args.rounds)


def compare_with_sklearn(logits: np.ndarray, labels: np.ndarray, ks, chunk_rows: int,
                         rounds: int) -> None:
    from sklearn.metrics import balanced_accuracy_score, top_k_accuracy_score

    num_classes = logits.shape[1]
    all_classes = np.arange(num_classes)

    def sklearn_topk():
        return [top_k_accuracy_score(labels, logits, k=k, labels=all_classes) for k in ks]

    def plantkit_topk():
        rows = metrics.RowScores.concat([
            metrics.score_rows(logits[s:s + chunk_rows], labels[s:s + chunk_rows])
            for s in range(0, len(labels), chunk_rows)
        ])
        return [metrics.topk_accuracy(rows, k) for k in ks], rows

    theirs_s, theirs = time_it(sklearn_topk, rounds)
    ours_s, (ours, rows) = time_it(plantkit_topk, rounds)
    true_scores = logits[np.arange(len(labels)), labels]
    tied = np.mean(np.count_nonzero(logits == true_scores[:, None], axis=1) > 1)
    print(f"top-k for k={list(ks)} over {logits.shape[0]:,} x {num_classes:,} (float16 values, "
          "float32 in memory):")
    print(f"  sklearn top_k_accuracy_score {theirs_s:.2f} s, plantkit score_rows {ours_s:.2f} s "
          f"(plantkit also yields ranks, NLL, confidence for the other metrics): sklearn / "
          f"plantkit = {theirs_s / ours_s:.1f}x")
    print(f"  largest top-k difference {np.max(np.abs(np.subtract(theirs, ours))):.5f}: "
          f"{tied:.1%} of rows tie the true class with another class (float16 rounding); "
          "sklearn lets the highest index win a tie, plantkit never credits one")

    compare_per_class(rows, labels, num_classes, logits.argmax(axis=1), rounds)

    macro_theirs_s, macro_theirs = time_it(
        lambda: balanced_accuracy_score(labels, logits.argmax(axis=1)), rounds)
    macro_ours = metrics.macro_topk_accuracy(rows, labels, 1, num_classes)
    print(f"  sklearn balanced_accuracy_score of argmax predictions (argmax included) "
          f"{macro_theirs_s * 1000:.0f} ms: {macro_theirs:.5f} vs plantkit macro top-1 "
          f"{macro_ours:.5f} (argmax wins ties, plantkit's tie rule does not)")


def compare_per_class(rows, labels: np.ndarray, num_classes: int, argmax: np.ndarray,
                      rounds: int) -> None:
    """Per-class top-1 (recall) and its macro mean: scikit-learn's recall_score, the code
    path of plantkit.metrics, against plantkit's own bincount (per_class_mean) on the same
    tie-rule hits; then top-3 per class (plantkit only: scikit-learn has no per-class
    top-k), and what importing sklearn.metrics costs a fresh process (plantkit report)."""
    import subprocess
    import sys

    hits = rows.hits(1)
    rounds = max(rounds, 5)
    sk_s, sk = time_it(lambda: metrics.per_class_recall(hits, labels, num_classes), rounds)
    own_s, own = time_it(lambda: metrics.per_class_mean(hits, labels, num_classes), rounds)
    top3_s, _ = time_it(lambda: metrics.per_class_topk(rows.rank, labels, num_classes, 3),
                        rounds)
    same = np.array_equal(sk, own, equal_nan=True)
    print(f"per-class top-1 over {len(labels):,} rows x {num_classes:,} classes: sklearn "
          f"recall_score(average=None) {sk_s * 1000:.1f} ms, plantkit bincount "
          f"{own_s * 1000:.2f} ms: sklearn / plantkit = {sk_s / own_s:.0f}x; identical "
          f"{same}; macro {metrics.macro_mean(sk):.5f}")
    print(f"  per-class top-3 (plantkit bincount; sklearn has none) {top3_s * 1000:.2f} ms")
    from sklearn.metrics import recall_score

    on_argmax = recall_score(labels, argmax, labels=np.arange(num_classes), average=None,
                             zero_division=np.nan)
    moved = np.nansum(np.abs(on_argmax - sk) > 0)
    print(f"  sklearn recall on argmax predictions differs from the tie rule's in {moved} "
          f"classes (macro {np.nanmean(on_argmax):.5f}): plantkit feeds it tie-rule hits")
    code = "import time; t = time.perf_counter(); import sklearn.metrics; " \
           "print(time.perf_counter() - t)"
    base = "import numpy, scipy.special, h5py; "
    seconds = [float(subprocess.run([sys.executable, "-c", base + code], capture_output=True,
                                    text=True, check=True).stdout) for _ in range(3)]
    print(f"  importing sklearn.metrics in a fresh process (once per plantkit report or "
          f"combine, and per report worker): {statistics.median(seconds):.2f} s")


if __name__ == "__main__":
    main()
