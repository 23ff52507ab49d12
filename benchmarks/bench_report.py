"""`plantkit report` at Pl@ntNet-300K scale: 26 experts x (val 31,118 + test 31,112) x 1,081.

Generates float16 prediction stores into a temporary folder (not timed; about 3.5 GB for
26 experts, deleted at the end unless --keep), then times, each in its own process:

- baseline: one plain pass over every store reading the logits and taking the argmax
  (the floor set by reading and upcasting the float16 logits),
- `plantkit report` (terminal tables), and `plantkit report --html FILE`,

and prints wall time, CPU time, peak memory (resident, summed over the process and its
workers, sampled) and the wall-time ratio to the baseline. On a shared machine the wall
time follows the load (printed); the CPU time much less so.
Targets (issue 4): under 60 s and under 4 GB on 2 cores. The logits are plausible: noise
plus a boosted class, the true one for about 69-82 % of the rows (by expert), rarer
species less often.

Integrity (issue 9): the same stores are also written without checksums (the layout
before issue 9, `plantkit.store.set_verification(False)`, under DIR/unverified: twice the
disk), and the baseline and `plantkit report --workers 1` are timed on both, alternately
(--repeats times each), printing the ratio "verification on / off" (target: <= 1.10).

    .venv/bin/python benchmarks/bench_report.py [--experts 26] [--val-rows 31118]
        [--test-rows 31112] [--classes 1081] [--dtype float16] [--dir /tmp] [--keep]
        [--stores DIR] [--no-html] [--repeats 3] [--no-verification-ratio]
    .venv/bin/python benchmarks/bench_report.py --experts 4 --val-rows 6000 \
        --test-rows 6000 --no-html          # a quick look (about a minute)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)
from plantkit import store as store_module
from plantkit.artifacts import artifact_lock, store_path
from plantkit.data.profiles import plantnet300k_table, split_counts
from plantkit.store import StoreWriter

CHUNK_ROWS = 4096
NOISE_POOL_ROWS = 16_384
HISTORY = "epoch,loss,top1,val_loss,val_top1,val_macro_top1,lr,seconds\n" + "".join(
    f"{e},{3 - 0.08 * e:.3f},{0.3 + 0.02 * e:.3f},{3.2 - 0.06 * e:.3f},{0.3 + 0.015 * e:.3f},"
    f"{0.1 + 0.007 * e:.3f},{0.01 if e < 20 else 0.001},420\n" for e in range(30)
)


def class_counts(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Train counts and per-class weights of the real Pl@ntNet-300K profile (recycled
    when more classes are asked for)."""
    table = plantnet300k_table()
    counts = split_counts(table["count_total"].to_numpy(), table["count_test"].to_numpy())
    train = np.resize(counts["train"].to_numpy(), num_classes)
    test = np.resize(counts["test"].to_numpy(), num_classes).astype(float)
    return train, test / test.sum()


def split_labels(n_rows: int, weights: np.ndarray, rng) -> np.ndarray:
    """Labels sorted by class, as a dataset's path order groups them, every class once."""
    labels = np.concatenate([np.arange(len(weights)),
                             rng.choice(len(weights), n_rows - len(weights), p=weights)])
    return np.sort(labels)


def write_expert(root: Path, index: int, splits: dict[str, np.ndarray], train: np.ndarray,
                 weights: np.ndarray, noise: np.ndarray, rng, dtype: str = "float16") -> None:
    num_classes = len(train)
    accuracy = 0.69 + 0.13 * index / 25  # the released models span 68.7 % .. 82.1 %
    # Rare species are hit less often: 15 points per decade of train images, centred so
    # that the image-weighted hit rate is `accuracy`.
    decades = np.log10(np.maximum(train, 1))
    hit_rate = np.clip(accuracy + 0.15 * (decades - weights @ decades), 0.02, 0.99)
    name = f"expert{index:02d}"
    attrs = {"architecture": f"arch{index:02d}", "params": int(2e6 + 3e6 * index),
             "gflops": round(0.05 + 0.4 * index, 2)}
    path = store_path(root, name)
    with artifact_lock(path.parent), StoreWriter(
            path, name=name, class_ids=[str(c) for c in range(num_classes)],
            fingerprint="bench-report", attrs=attrs, train_counts=train) as writer:
        for split, labels in splits.items():
            out = writer.create_split(split, n_rows=len(labels), num_classes=num_classes,
                                      dtype=dtype)
            for start in range(0, len(labels), CHUNK_ROWS):
                chunk = labels[start:start + CHUNK_ROWS]
                rows = np.arange(len(chunk))
                logits = noise[rng.integers(0, len(noise), len(chunk))]
                hit = rng.random(len(chunk)) < hit_rate[chunk]
                boosted = np.where(hit, chunk, rng.integers(0, num_classes, len(chunk)))
                # +6 to +12 over N(0, 1) noise in 1,081 classes: top-1 confidence ~0.2-0.99
                logits[rows, boosted] += rng.uniform(6, 12, len(chunk)).astype(np.float16)
                out.write(start, logits, chunk)
    if index < 3:  # a few experts with a training history
        (store_path(root, name).parent / "history.csv").write_text(HISTORY)


def generate(root: Path, experts: int, val_rows: int, test_rows: int, num_classes: int,
             dtype: str = "float16") -> int:
    rng = np.random.default_rng(0)
    train, weights = class_counts(num_classes)
    splits = {"val": split_labels(val_rows, weights, rng),
              "test": split_labels(test_rows, weights, rng)}
    noise = rng.standard_normal((NOISE_POOL_ROWS, num_classes), dtype=np.float32)
    noise = noise.astype(np.float16)
    for index in range(experts):
        write_expert(root, index, splits, train, weights, noise, rng, dtype)
    return sum(f.stat().st_size for f in (root / "experts").rglob("*.h5"))


def generate_unverified(root: Path, *args) -> int:
    """The same stores (same seed) without checksums, as plantkit wrote them before issue 9."""
    store_module.set_verification(False)
    try:
        return generate(root, *args)
    finally:
        store_module.set_verification(True)


# Run first in a child to read (and write) with the integrity checks off.
VERIFICATION_OFF = "from plantkit import store\nstore.set_verification(False)\n"
CLI = """
import sys
from plantkit.commands.main import run
sys.argv[0] = "plantkit"
run()
"""
BASELINE = """
import sys
from pathlib import Path
from plantkit.artifacts import find_stores
from plantkit.store import open_store
hits = 0
for path in find_stores(sys.argv[1]):
    with open_store(path) as store:
        for split in store.splits:
            labels = store.labels(split)
            for start, chunk in store.iter_logits(split):
                hits += int((chunk.argmax(axis=1) == labels[start:start + len(chunk)]).sum())
print(hits)
"""


def tree_rss(root_pid: int) -> int:
    """Resident bytes of a process and all its descendants (worker processes), from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            parents[int(entry.name)] = int(fields[1])
            rss[int(entry.name)] = int(Path(entry.path, "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue  # the process ended while we looked
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        children = [c for c, parent in parents.items() if parent == pid and c not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(rss.get(pid, 0) for pid in tree)


def timed(command: list[str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (the child and its worker processes) and peak resident GB
    (sampled every 0.2 s, summed over the process tree) of a child process."""
    begin = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, "COLUMNS": "200"})
    peak = 0
    while True:
        # wait4 reaps the child with its resource usage, which includes the worker
        # processes it waited for.
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - begin
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode()[-2000:]
    child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return seconds, usage.ru_utime + usage.ru_stime, peak / 1e9


def timed_exactly(command: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of a child process, waited for without sampling (exact)."""
    begin = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env={**os.environ, "COLUMNS": "200"})
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - begin
    error = child.stderr.read().decode()[-2000:]
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{error}")
    return seconds, usage.ru_utime + usage.ru_stime


def verification_ratio(root: Path, unverified: Path, repeats: int) -> None:
    """Time the baseline and `report --workers 1` with the integrity checks on (stores with
    checksums) and off (the same stores without), alternately, and print the ratios."""
    python = sys.executable

    def report(where: Path) -> list[str]:
        return ["--artifacts", str(where), "report", "--quiet", "--workers", "1"]

    runs = [
        ("baseline: read + argmax", [python, "-c", BASELINE, str(root)],
         [python, "-c", VERIFICATION_OFF + BASELINE, str(unverified)]),
        ("plantkit report --workers 1", [python, "-c", CLI, *report(root)],
         [python, "-c", VERIFICATION_OFF + CLI, *report(unverified)]),
    ]
    # Both sets of stores into the page cache first, so that both read from memory alike.
    for _, on, off in runs[:1]:
        timed_exactly(on), timed_exactly(off)
    print(f"verification on / off (median of {repeats}, alternating; target <= 1.10):")
    for label, on, off in runs:
        times = {"on": [], "off": []}
        for _ in range(repeats):
            times["on"].append(timed_exactly(on))
            times["off"].append(timed_exactly(off))
        wall = {k: float(np.median([t[0] for t in v])) for k, v in times.items()}
        cpu = {k: float(np.median([t[1] for t in v])) for k, v in times.items()}
        print(f"  {label:28s} on {wall['on']:6.2f} s / off {wall['off']:6.2f} s wall = "
              f"{wall['on'] / wall['off']:5.3f}   CPU {cpu['on']:6.2f} / {cpu['off']:6.2f} s = "
              f"{cpu['on'] / cpu['off']:5.3f}")


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the generated stores (Pl@ntNet-300K scale by default), shared with
    bench_tui.py."""
    parser.add_argument("--experts", type=int, default=26)
    parser.add_argument("--val-rows", type=int, default=31_118)
    parser.add_argument("--test-rows", type=int, default=31_112)
    parser.add_argument("--classes", type=int, default=1081)
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="Where the temporary stores go (needs ~3.5 GB for 26 experts).")
    parser.add_argument("--keep", action="store_true", help="Keep the generated stores.")
    parser.add_argument("--stores", help="Time the stores a --keep run left here instead.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_arguments(parser)
    parser.add_argument("--no-html", action="store_true", help="Skip the --html run.")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                        help="Stored logits dtype (default float16).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Timings of each side of the verification on / off ratio.")
    parser.add_argument("--no-verification-ratio", action="store_true",
                        help="Skip the stores without checksums and the on / off ratio.")
    args = parser.parse_args()

    if args.stores:
        root, args.keep = Path(args.stores), True
        print(f"reusing the stores under {root}")
    else:
        root = Path(tempfile.mkdtemp(prefix="plantkit-bench-report-", dir=args.dir))
    try:
        unverified = root / "unverified"  # an artifacts root of its own
        if not args.stores:
            shape = (args.experts, args.val_rows, args.test_rows, args.classes, args.dtype)
            begin = time.perf_counter()
            size = generate(root, *shape)
            print(f"generated {args.experts} experts x (val {args.val_rows:,} + test "
                  f"{args.test_rows:,}) x {args.classes:,} classes, {args.dtype}: "
                  f"{size / 1e9:.2f} GB in {time.perf_counter() - begin:.0f} s (not timed) "
                  f"under {root}")
            if not args.no_verification_ratio:
                begin = time.perf_counter()
                size = generate_unverified(unverified, *shape)
                print(f"and without checksums: {size / 1e9:.2f} GB in "
                      f"{time.perf_counter() - begin:.0f} s under {unverified}")
        print(f"machine: {os.cpu_count()} cores, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        python = sys.executable
        report = [python, "-m", "plantkit.commands.main", "--artifacts", str(root), "report",
                  "--quiet"]
        runs = [("baseline: read + argmax", [python, "-c", BASELINE, str(root)]),
                ("plantkit report --workers 1", report + ["--workers", "1"]),
                ("plantkit report", report)]
        if not args.no_html:
            runs.append(("plantkit report --html", report + ["--html", str(root / "r.html")]))
        baseline = None
        for label, command in runs:
            seconds, cpu, peak_gb = timed(command)
            baseline = baseline or seconds
            print(f"{label:28s} {seconds:6.1f} s wall  {cpu:6.1f} s CPU  peak {peak_gb:5.2f} GB"
                  f"  {seconds / baseline:4.1f}x baseline (wall)")
        if not args.no_html:
            print(f"HTML page: {(root / 'r.html').stat().st_size / 1e6:.1f} MB")
        if args.no_verification_ratio:
            pass
        elif not (unverified / "experts").is_dir():
            print(f"no stores without checksums under {unverified}: no on / off ratio")
        else:
            verification_ratio(root, unverified, args.repeats)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
