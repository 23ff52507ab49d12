"""SVG screenshots of every screen of `plantkit report --tui`, for docs/screens/.

    python scripts/tui_screenshots.py              # plantkit demo --quick, then its artifacts
    python scripts/tui_screenshots.py ARTIFACTS    # an artifacts root that has stores

Drives the app headless (Textual's Pilot) at one terminal size (default 120x36) and writes
<out>/tui-leaderboard.svg, tui-model-species.svg, tui-model-summary.svg,
tui-model-history.svg, tui-compare.svg and tui-help.svg (default out: docs/screens). Run it
again whenever a screen's layout changes, and commit the SVGs with the change.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZE = (120, 36)


def demo_artifacts(folder: Path) -> Path:
    """Run `plantkit demo --quick` into `folder` and return its artifacts root."""
    out = folder / "demo"
    subprocess.run([sys.executable, "-m", "plantkit.commands.main", "demo", "--quick",
                    "--quiet", "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return out


def load_report(artifacts: Path) -> dict:
    """The report dict `plantkit report --json` prints for `artifacts`."""
    result = subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(artifacts),
         "report", "--json"], check=True, capture_output=True, text=True)
    import json

    return json.loads(result.stdout)


async def shoot(report: dict, out: Path, size: tuple[int, int]) -> list[Path]:
    from plantkit.report.tui.app import (
        CompareScreen,
        HelpScreen,
        LeaderboardScreen,
        ModelScreen,
        ReportApp,
    )

    app = ReportApp(report=report)
    written: list[Path] = []

    async def save(name: str, screen_type: type) -> None:
        await pilot.pause()
        if not isinstance(app.screen, screen_type):
            raise SystemExit(f"expected the {screen_type.__name__} for {name}, "
                             f"got {type(app.screen).__name__}")
        written.append(Path(app.save_screenshot(f"tui-{name}.svg", str(out))))

    async with app.run_test(size=size) as pilot:
        await save("leaderboard", LeaderboardScreen)
        await pilot.press("enter")
        await save("model-species", ModelScreen)
        for tab in ("summary", "history"):
            await pilot.press("t")  # the next tab
            await save(f"model-{tab}", ModelScreen)
        await pilot.press("escape")
        # The best model (first row) against the second: what the second wins and loses.
        await pilot.press("m", "down", "m", "c")
        await save("compare", CompareScreen)
        await pilot.press("escape", "question_mark")
        await save("help", HelpScreen)
        await pilot.press("escape", "q")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", nargs="?", type=Path,
                        help="artifacts root (default: a fresh `plantkit demo --quick`)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens",
                        help="folder of the SVGs (default: docs/screens)")
    parser.add_argument("--size", default=f"{SIZE[0]}x{SIZE[1]}",
                        help="terminal WIDTHxHEIGHT (default: %(default)s)")
    args = parser.parse_args(argv)
    width, _, height = args.size.partition("x")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="plantkit-tui-screens-") as tmp:
        report = load_report(args.artifacts or demo_artifacts(Path(tmp)))
    for path in asyncio.run(shoot(report, args.out, (int(width), int(height)))):
        print(path)
    print(f"in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
