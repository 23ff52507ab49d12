"""Benchmark `plantkit combine` at Pl@ntNet-300K scale against the floor measured in the same run.

Scale (defaults): 26 experts, val 31,118 + test 31,112 rows, 1,081 classes, float16 logits
(about 3.5 GB of stores, written under a temporary folder in /tmp and deleted afterwards).
The floor is one pass that reads every logit from the stores and exponentiates it (float32
NumPy, row chunks). Each measurement runs in its own process (the command as a user runs it,
interpreter start included), so its peak RSS is its own. Targets: `--average` within 2x the
floor, `--average --weighted` within 4x, each under 3 GB.

Integrity (issue 9): the same stores are also written without checksums (the layout before
issue 9, `plantkit.store.set_verification(False)`, under DIR/unverified: twice the disk),
and the floor and `--average` are timed on both, alternately, with the checks on and off
(`--repeats` times each), printing the ratio "verification on / off" (target: <= 1.10).

    .venv/bin/python benchmarks/bench_combine.py                 # full scale (minutes)
    .venv/bin/python benchmarks/bench_combine.py --experts 6 --rows 8000   # quick look
    .venv/bin/python benchmarks/bench_combine.py --no-verification-ratio  # stores once
"""

from __future__ import annotations

import argparse
import json
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
from plantkit.artifacts import artifact_lock, find_stores, store_path
from plantkit.store import StoreWriter, open_store

VAL_ROWS, TEST_ROWS, CLASSES = 31_118, 31_112, 1_081
_WRITE_ROWS = 4096
_POOL_ROWS = 8192
# Run first in a child to read (and write) with the integrity checks off.
VERIFICATION_OFF = "from plantkit import store\nstore.set_verification(False)\n"
CLI = """
import sys
from plantkit.commands.main import run
sys.argv[0] = "plantkit"
run()
"""


def generate(root: Path, n_experts: int, n_val: int, n_test: int, n_classes: int,
             seed: int = 0, dtype: str = "float16") -> None:
    """Expert stores of varied quality and calibration; labels long-tailed, rows sorted."""
    rng = np.random.default_rng(seed)
    class_ids = [str(1_000_000 + c) for c in range(n_classes)]
    counts = np.maximum(1, (2000 * np.arange(1, n_classes + 1) ** -1.1).astype(np.int64))
    prior = counts / counts.sum()
    labels = {split: np.sort(rng.choice(n_classes, size=n, p=prior))
              for split, n in (("val", n_val), ("test", n_test))}
    # Drawing 1.7 G normals would dominate; rows of a float32 noise pool, rolled per block
    # and expert, make logits that differ enough between experts.
    pool = rng.standard_normal((_POOL_ROWS, n_classes), dtype=np.float32)
    for m in range(n_experts):
        strength, scale = 2.0 + 3.0 * m / max(1, n_experts - 1), 0.6 + 0.1 * (m % 10)
        attrs = {"architecture": f"bench-{m}", "params": 10_000_000 + m,
                 "gflops": round(0.5 + 0.8 * m, 2)}
        path = store_path(root, f"expert{m:02d}")
        with artifact_lock(path.parent), StoreWriter(
                path, name=f"expert{m:02d}", class_ids=class_ids, fingerprint="bench",
                attrs=attrs, train_counts=counts) as writer:
            for split, y in labels.items():
                part = writer.create_split(split, n_rows=len(y), dtype=dtype)
                for first in range(0, len(y), _WRITE_ROWS):
                    rows = y[first:first + _WRITE_ROWS]
                    start = int(rng.integers(0, _POOL_ROWS - len(rows) + 1))
                    block = pool[start:start + len(rows)] * np.float32(scale)
                    block[np.arange(len(rows)), rows] += strength * scale
                    block += np.roll(np.log(prior), m).astype(np.float32)[None, :] * 0.3
                    part.write(first, block.astype(dtype), rows,
                               [f"{split}/{class_ids[c]}/{first + i:06d}.jpg"
                                for i, c in enumerate(rows)])


def generate_unverified(root: Path, *args, **kwargs) -> None:
    """The same stores (same seed) without checksums, as plantkit wrote them before issue 9."""
    store_module.set_verification(False)
    try:
        generate(root, *args, **kwargs)
    finally:
        store_module.set_verification(True)


def floor(root: Path, chunk_rows: int) -> None:
    """Read every logit of every store (val and test) in row chunks and exponentiate it."""
    stores = [open_store(p) for p in find_stores(root, kind="expert")]
    for split in ("val", "test"):
        for store in stores:
            for _, chunk in store.iter_logits(split, chunk_rows):
                np.exp(chunk, out=chunk)
    for store in stores:
        store.close()


def measure(command: list[str]) -> dict:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    stderr = child.stderr.read().decode()
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024}


def verification_ratio(root: Path, unverified: Path, chunk_rows: int, repeats: int) -> dict:
    """Time the floor and `--average` with the integrity checks on (stores with checksums)
    and off (the same stores without), alternately; print and return the ratios."""
    python = sys.executable

    def floor_cmd(where: Path, *off: str) -> list[str]:
        return [python, __file__, "--floor-only", str(where), "--chunk-rows", str(chunk_rows),
                *off]

    def average(where: Path) -> list[str]:
        return ["--artifacts", str(where), "combine", "--quiet", "--json", "--average"]

    runs = {
        "floor": (floor_cmd(root), floor_cmd(unverified, "--verification-off")),
        "--average": ([python, "-c", CLI, *average(root)],
                      [python, "-c", VERIFICATION_OFF + CLI, *average(unverified)]),
    }
    measure(runs["floor"][1])  # the stores without checksums into the page cache too
    print(f"verification on / off (median of {repeats}, alternating; target <= 1.10):")
    ratios = {}
    for name, (on, off) in runs.items():
        times = {"on": [], "off": []}
        for _ in range(repeats):
            times["on"].append(measure(on)["seconds"])
            times["off"].append(measure(off)["seconds"])
        on_s, off_s = float(np.median(times["on"])), float(np.median(times["off"]))
        ratios[name] = {"on": times["on"], "off": times["off"], "ratio": on_s / off_s}
        print(f"  {name:<22}on {on_s:7.2f} s / off {off_s:7.2f} s = {on_s / off_s:5.3f}")
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experts", type=int, default=26)
    parser.add_argument("--rows", type=int, default=VAL_ROWS,
                        help=f"val rows (test: val - 6); default {VAL_ROWS:,}")
    parser.add_argument("--classes", type=int, default=CLASSES)
    parser.add_argument("--chunk-rows", type=int, default=4096, help="floor's row chunks")
    parser.add_argument("--repeats", type=int, default=1, help="measurements of each")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--keep", action="store_true", help="keep the generated stores")
    parser.add_argument("--stores", type=Path,
                        help="measure stores written earlier (--generate-only); kept")
    parser.add_argument("--generate-only", action="store_true",
                        help="write the stores, print their folder, measure nothing")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                        help="stored logits dtype (default float16)")
    parser.add_argument("--no-verification-ratio", action="store_true",
                        help="skip the stores without checksums and the on / off ratio")
    parser.add_argument("--floor-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--verification-off", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_only is not None:
        store_module.set_verification(not args.verification_off)
        floor(args.floor_only, args.chunk_rows)
        return

    n_val, n_test = args.rows, max(1, args.rows - (VAL_ROWS - TEST_ROWS))
    if args.stores is not None:
        root, args.keep = args.stores, True
        shutil.rmtree(root / "combos", ignore_errors=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="bench_combine-", dir=args.dir))
    unverified = root / "unverified"  # an artifacts root of its own
    try:
        if args.stores is None:
            started = time.perf_counter()
            generate(root, args.experts, n_val, n_test, args.classes, dtype=args.dtype)
            seconds = time.perf_counter() - started
            if not args.no_verification_ratio:
                generate_unverified(unverified, args.experts, n_val, n_test, args.classes,
                                    dtype=args.dtype)
        shutil.rmtree(unverified / "combos", ignore_errors=True)
        paths = find_stores(root, kind="expert")
        with open_store(paths[0]) as first:
            shape = (first.num_rows("val"), first.num_rows("test"), first.num_classes)
            dtype = first.logits_dtype("val")
        size = sum(p.stat().st_size for p in paths) / 1e9
        print(f"{len(paths)} experts x ({shape[0]:,} val + {shape[1]:,} test) x {shape[2]:,} "
              f"classes, {dtype}, {size:.2f} GB"
              f"{'' if args.stores else f' written in {seconds:.0f} s'} ({os.cpu_count()} "
              f"cores, load average {os.getloadavg()[0]:.1f})")
        if args.generate_only:
            args.keep = True
            return
        python = sys.executable
        floor_cmd = [python, __file__, "--floor-only", str(root), "--chunk-rows",
                     str(args.chunk_rows)]
        combine = [python, "-m", "plantkit.commands.main", "--artifacts", str(root), "combine",
                   "--quiet", "--json"]
        runs = {"floor": floor_cmd, "--average": [*combine, "--average"],
                "--average --weighted": [*combine, "--average", "--weighted"]}
        measure(floor_cmd)  # warm the page cache: every run then reads from memory alike
        results = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, command in runs.items():
                results[name].append(measure(command))
        results["floor"].append(measure(floor_cmd))  # a second floor shows the drift
        floor_s = float(np.median([r["seconds"] for r in results["floor"]]))
        targets = {"floor": 1.0, "--average": 2.0, "--average --weighted": 4.0}
        print(f"{'run':<24}{'seconds':>10}{'x floor':>10}{'target':>9}{'peak RSS':>12}")
        summary = {}
        for name, rows in results.items():
            seconds = float(np.median([r["seconds"] for r in rows]))
            peak = max(r["peak_rss_mb"] for r in rows)
            summary[name] = {"seconds": [r["seconds"] for r in rows], "ratio": seconds / floor_s,
                             "peak_rss_mb": peak}
            print(f"{name:<24}{seconds:>10.1f}{seconds / floor_s:>10.2f}"
                  f"{'<= ' + format(targets[name], 'g') + 'x':>9}{peak:>9.0f} MB")
        print(f"load average after: {os.getloadavg()[0]:.1f}; every time includes the "
              "interpreter start (about 1 s)")
        if args.no_verification_ratio:
            pass
        elif not (unverified / "experts").is_dir():
            print(f"no stores without checksums under {unverified}: no on / off ratio")
        else:
            summary["verification on / off"] = verification_ratio(
                root, unverified, args.chunk_rows, max(3, args.repeats))
        print(json.dumps(summary))
    finally:
        if args.keep:
            print(f"stores kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
