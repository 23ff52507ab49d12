"""Render plantkit's HTML pages to PNG screenshots with headless Chromium.

    python scripts/html_screenshots.py                 # plantkit demo --quick, then its pages
    python scripts/html_screenshots.py a.html b.html   # these pages

Each page becomes <out>/<stem>.png (default docs/screens/report.png and eda.png), so a
change that breaks a plot is seen in the diff of the PNGs, not only in a browser. The page
is drawn in a tall window and the empty background below its end is cut off.
Needs a Chromium binary: Debian's `apt-get install chromium`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageChops

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH = 1400  # wider than the pages' 1200 px column, so no page reflows between runs
HEIGHT = 12_000  # taller than any page; the blank rest is cropped
# plotly draws after the page loads; the virtual time budget lets its scripts finish before
# the shot without a fixed sleep.
VIRTUAL_TIME_MS = 10_000
MARGIN = 40  # px of background kept below the page's last content
DEMO_PAGES = ("report.html", "eda.html")


def find_browser() -> str:
    """The first Chromium-like binary on PATH; exits with how to get one when none is."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    sys.exit(f"no Chromium found (looked for {', '.join(BROWSERS)}): "
             "install Debian's chromium: apt-get install chromium")


def screenshot(browser: str, page: Path, target: Path, width: int, height: int) -> None:
    """Draw `page` into `target` (PNG), cropped below its content."""
    command = [
        browser, "--headless=new",
        "--no-sandbox",  # the sandbox refuses to start as root (containers, CI)
        "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
        f"--window-size={width},{height}", f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        f"--screenshot={target}", page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or not target.is_file():
        # Chromium logs harmless dbus errors on every run: shown only when it failed.
        sys.exit(f"chromium failed on {page} (exit {result.returncode}):\n{result.stderr}")
    _crop_blank_bottom(target)


def _crop_blank_bottom(path: Path) -> None:
    """Cut the rows below the page's content (the colour of the bottom-left pixel)."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    background = Image.new("RGB", rgb.size, rgb.getpixel((0, rgb.height - 1)))
    box = ImageChops.difference(rgb, background).getbbox()
    if box is not None:
        rgb = rgb.crop((0, 0, rgb.width, min(rgb.height, box[3] + MARGIN)))
    rgb.save(path, optimize=True)


def demo_pages(folder: Path) -> list[Path]:
    """Run `plantkit demo --quick` into `folder` and return its HTML pages."""
    out = folder / "demo"
    subprocess.run([sys.executable, "-m", "plantkit.commands.main", "demo", "--quick",
                    "--out", str(out)], check=True, stdout=subprocess.DEVNULL)
    return [out / "reports" / name for name in DEMO_PAGES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path,
                        help="HTML files (default: the pages of `plantkit demo --quick`)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens",
                        help="folder of the PNGs (default: docs/screens)")
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--height", type=int, default=HEIGHT,
                        help="window height; the page is cropped below its content")
    args = parser.parse_args(argv)
    browser = find_browser()  # before the demo's minute of training
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="plantkit-screens-") as tmp:
        started = time.perf_counter()
        pages = args.pages or demo_pages(Path(tmp))
        missing = [str(p) for p in pages if not p.is_file()]
        if missing:
            sys.exit(f"no such HTML file: {', '.join(missing)}")
        for page in pages:
            target = args.out / f"{page.stem}.png"
            screenshot(browser, page, target, args.width, args.height)
            with Image.open(target) as image:
                print(f"{target} ({image.width} x {image.height})")
        print(f"{len(pages)} page(s) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
