"""`plantkit report --tui` at Pl@ntNet-300K scale: time to the leaderboard and key latency.

Generates the stores benchmarks/bench_report.py generates (26 experts x (val 31,118 + test
31,112) x 1,081 classes, float16, about 3.6 GB; not timed; deleted unless --keep), then runs
the app headless (Textual's Pilot, 160x48) with its real loader (build_report in the loading
worker, as `plantkit report --tui` does) and prints:

- the seconds from start to the leaderboard on screen (target: < 20 s on 2 cores), against
  a baseline measured in the same run: one pass reading every store and taking the argmax;
- the milliseconds each key takes to be handled and the screen redrawn (target: < 100 ms),
  the median and the worst of --sessions runs of the app (the CPU time varies by tens of ms):
  sort, reverse, split, open a model (1,081 species), search, bucket filter, back, mark,
  compare, back. The latency is the app's CPU time from the key to idle: once loaded, the
  app is one thread, so that is the time a user waits in a terminal. The wall time is
  printed too; it adds Pilot's idle detection (sleeps of 10 ms until the process's CPU
  clock stops moving), which a real terminal does not have.

    .venv/bin/python benchmarks/bench_tui.py [--experts 26] [--val-rows 31118]
        [--test-rows 31112] [--classes 1081] [--stores DIR] [--keep] [--dir /tmp]
        [--sessions 3]
    .venv/bin/python benchmarks/bench_tui.py --experts 4 --val-rows 6000 --test-rows 6000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plantkit.report.inputs import collect_store_paths
from plantkit.report.leaderboard import build_report
from plantkit.report.tui.app import LeaderboardScreen, ReportApp
from plantkit.report.tui.run import start_resource_tracker

# (key, what it does, the screen it leaves on screen): a key that did not do its work
# would look fast, so each step checks where it landed.
KEYS = [("z", "nothing (the harness)", "LeaderboardScreen"),
        ("s", "sort by the next column", "LeaderboardScreen"),
        ("r", "reverse", "LeaderboardScreen"), ("v", "next split", "LeaderboardScreen"),
        ("enter", "open a model", "ModelScreen"), ("slash", "search box", "ModelScreen"),
        ("1", "search '1'", "ModelScreen"), ("escape", "clear the search", "ModelScreen"),
        ("b", "bucket filter", "ModelScreen"), ("t", "summary tab", "ModelScreen"),
        ("t", "history tab", "ModelScreen"), ("escape", "back", "LeaderboardScreen"),
        ("down", "cursor down", "LeaderboardScreen"),
        ("enter", "open another model", "ModelScreen"), ("escape", "back", "LeaderboardScreen"),
        ("home", "first row", "LeaderboardScreen"), ("m", "mark", "LeaderboardScreen"),
        ("down", "cursor down", "LeaderboardScreen"),
        ("m", "mark a second", "LeaderboardScreen"), ("c", "compare", "CompareScreen"),
        ("r", "reverse", "CompareScreen"), ("x", "swap the two", "CompareScreen"),
        ("escape", "back", "LeaderboardScreen")]


async def drive(root: Path) -> tuple[float, list[tuple[str, str, float, float]]]:
    paths = collect_store_paths([], root)
    app = ReportApp(load=lambda advance: build_report(paths, advance=advance))
    begin = time.perf_counter()
    async with app.run_test(size=(160, 48)) as pilot:
        while not isinstance(app.screen, LeaderboardScreen):
            if app.error is not None:
                raise app.error
            await pilot.pause(0.05)
        await pilot.pause()
        loaded = time.perf_counter() - begin
        timings = []
        for key, what, screen in KEYS:
            start, cpu = time.perf_counter(), time.process_time()
            await pilot.press(key)
            await pilot.pause()  # every message the key caused handled, the screen refreshed
            if type(app.screen).__name__ != screen:
                raise SystemExit(f"after {key} ({what}): {type(app.screen).__name__}, "
                                 f"not {screen}")
            timings.append((key, what, 1000 * (time.perf_counter() - start),
                            1000 * (time.process_time() - cpu)))
        await pilot.press("q")
    return loaded, timings


def main() -> None:
    # Imported here, not at the top: the evaluating processes are spawned, and each imports
    # this script as its main module; bench_report imports keras and torch (its store
    # generator), which `plantkit report --tui`'s processes never pay for.
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_report import BASELINE, add_store_arguments, generate  # the same stores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_store_arguments(parser)
    parser.add_argument("--sessions", type=int, default=3,
                        help="open the app this many times: each key's median and worst "
                             "(a first open happens once a session)")
    args = parser.parse_args()
    root = Path(args.stores) if args.stores else Path(
        tempfile.mkdtemp(prefix="plantkit-bench-tui-", dir=args.dir))
    try:
        if not args.stores:
            begin = time.perf_counter()
            size = generate(root, args.experts, args.val_rows, args.test_rows, args.classes)
            print(f"generated {args.experts} experts x (val {args.val_rows:,} + test "
                  f"{args.test_rows:,}) x {args.classes:,}: {size / 1e9:.2f} GB in "
                  f"{time.perf_counter() - begin:.0f} s (not timed)")
        print(f"machine: {os.cpu_count()} cores, load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        begin = time.perf_counter()
        subprocess.run([sys.executable, "-c", BASELINE, str(root)], check=True,
                       capture_output=True)
        baseline = time.perf_counter() - begin
        start_resource_tracker()
        sessions = [asyncio.run(drive(root)) for _ in range(args.sessions)]
        loads = [loaded for loaded, _ in sessions]
        print(f"baseline (read + argmax every store): {baseline:6.1f} s")
        print(f"leaderboard on screen:                {max(loads):6.1f} s at worst of "
              f"{len(loads)} session(s) ({' '.join(f'{x:.1f}' for x in loads)}; "
              f"{max(loads) / baseline:.1f}x baseline; target < 20 s)")
        print(f"{'key':<8} {'what':<26} {'CPU ms: median':>14} {'worst':>6} {'wall ms':>8}")
        worst = 0.0
        for i, (key, what, *_) in enumerate(KEYS):
            cpus = sorted(timings[i][3] for _, timings in sessions)
            walls = sorted(timings[i][2] for _, timings in sessions)
            worst = max(worst, cpus[-1])
            print(f"{key:<8} {what:<26} {statistics.median(cpus):14.1f} {cpus[-1]:6.1f} "
                  f"{statistics.median(walls):8.1f}")
        print(f"slowest key: {worst:.1f} ms of CPU at worst (target < 100 ms)")
    finally:
        if not args.keep and not args.stores:
            shutil.rmtree(root, ignore_errors=True)
        elif args.keep:
            print(f"stores kept under {root}")


if __name__ == "__main__":
    main()
