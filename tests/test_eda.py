"""Dataset analysis of `plantkit data inspect`: numbers, tables, HTML page, CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from plantkit.data.eda import classes_per_decile, shot_buckets, split_check, summarize
from plantkit.data.profiles import make_profile
from plantkit.report.eda_html import write_eda_html
from plantkit.report.eda_tables import print_summary

REAL_DECILES = [3, 9, 16, 25, 38, 54, 81, 125, 231, 1081]


def _frame(rows: dict[str, tuple[int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=["train", "val", "test"])
    frame.index.name = "class_id"
    frame.insert(0, "species_name", [f"Species {i}" for i in frame.index])
    return frame


def _from_totals(totals: list[int]) -> pd.DataFrame:
    """Counts frame whose classes hold `totals` images, all in train."""
    return _frame({f"c{i}": (t, 0, 0) for i, t in enumerate(totals)})


@pytest.fixture(scope="module")
def real_summary() -> dict:
    return summarize(make_profile("plantnet300k"), source="profile plantnet300k")


# --- the real Pl@ntNet-300K profile ---------------------------------------------------------


def test_real_profile_deciles(real_summary):
    assert real_summary["classes_per_decile"]["classes"] == REAL_DECILES
    assert real_summary["classes_per_decile"]["deciles"] == list(range(10, 101, 10))


def test_real_profile_sizes(real_summary):
    sizes = real_summary["class_sizes"]
    assert (sizes["min"], sizes["median"], sizes["max"]) == (4, 27, 9012)
    assert sizes["max_class"]["class_id"] == "1363227"
    assert sizes["max_class"]["species_name"].startswith("Daucus carota")
    assert sizes["classes_at_most_10"] == 321


def test_real_profile_splits_and_table(real_summary):
    assert real_summary["images_per_split"]["total"] == 306_146
    assert sum(real_summary["images_per_split"][s] for s in ("train", "val", "test")) == 306_146
    assert real_summary["classes_per_split"] == {
        "total": 1081,
        "train": 1081,
        "val": 1081,
        "test": 1081,
    }
    table = real_summary["per_class"]
    assert len(table) == 1081
    assert table[0]["class_id"] == "1355868"  # class-index order kept
    assert set(table[0]) == {"class_id", "species_name", "train", "val", "test", "total"}
    shots = real_summary["shots"]
    assert shots["many"] + shots["medium"] + shots["few"] == 1081
    # The published test counts differ from ceil(10 %) by at most one image.
    assert real_summary["split_check"]["n_flagged"] == 0


def test_summary_is_plain_json(real_summary):
    text = json.dumps(real_summary)  # no numpy scalars anywhere
    assert json.loads(text) == real_summary


# --- deciles on hand-made frames --------------------------------------------------------------


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        # ten equal classes: each is exactly one decile (exact boundary everywhere)
        ([5] * 10, list(range(1, 11))),
        # 50 of 100 in one class: first class lands exactly on 50 %
        ([50, 10, 10, 10, 10, 10], [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]),
        # ties: order among equal classes does not matter
        ([3, 3, 2, 2], [0, 0, 1, 1, 1, 2, 2, 3, 3, 4]),
        # one class holds everything
        ([7], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
    ],
)
def test_deciles_small(totals, expected):
    assert classes_per_decile(np.array(totals)) == expected
    summary = summarize(_from_totals(list(reversed(totals))), source="t")
    assert summary["classes_per_decile"]["classes"] == expected


def test_deciles_just_over_boundary():
    # 11 of 100 in the largest class: above 10 %, so decile 1 holds no class
    assert classes_per_decile(np.array([11] + [1] * 89))[0] == 0
    assert classes_per_decile(np.array([10] + [1] * 90))[0] == 1


# --- split check --------------------------------------------------------------------------------


def test_split_check_flags_skewed_class_only():
    frame = _frame(
        {
            "ok": (80, 10, 10),
            "ok_rounding": (79, 11, 10),  # off by one image: rounding, not flagged
            "skewed": (60, 20, 20),
            "no_val_test": (10, 0, 0),  # the rule wants 8/1/1: train off by 2
            "tiny": (2, 1, 1),
        }
    )
    check = split_check(frame)
    assert check["n_flagged"] == 2
    flagged = {row["class_id"]: row for row in check["flagged"]}
    assert set(flagged) == {"skewed", "no_val_test"}
    assert flagged["skewed"]["expected"] == {"train": 80, "val": 10, "test": 10}
    assert flagged["skewed"]["shares"] == {"train": 0.6, "val": 0.2, "test": 0.2}
    assert flagged["no_val_test"]["expected"] == {"train": 8, "val": 1, "test": 1}
    assert flagged["skewed"]["reasons"] == ["off by more than 1"]
    assert flagged["no_val_test"]["reasons"] == ["off by more than 1", "empty val", "empty test"]
    assert flagged["no_val_test"]["species_name"] == "Species no_val_test"


def test_split_check_small_classes_use_min_split():
    # 5 images: val = test = max(1, ceil(0.5)) = 1, train 3
    assert split_check(_frame({"a": (3, 1, 1)}))["n_flagged"] == 0
    # below 4 images the rule's minimum 2/1/1 applies: 3/0/0 is within one image of it,
    # but its val and test splits are empty, which the minimum split forbids
    check = split_check(_frame({"a": (3, 1, 1), "b": (3, 0, 0), "c": (2, 1, 0)}))
    assert check["n_flagged"] == 2
    assert check["flagged"][0]["reasons"] == ["empty val", "empty test"]
    assert check["flagged"][1]["reasons"] == ["empty test"]
    # 5/0/0 against 3/1/1: train two images over
    assert split_check(_frame({"a": (3, 1, 1), "b": (5, 0, 0)}))["n_flagged"] == 1
    assert split_check(_frame({"a": (3, 1, 1), "b": (0, 5, 0)}))["n_flagged"] == 1


def test_split_check_missing_split_not_checked():
    # No val split at all: its share counts for train, the 80/10/10 classes pass.
    frame = _frame({"a": (90, 0, 10), "b": (45, 0, 5)})
    check = split_check(frame)
    assert check["checked_splits"] == ["train", "test"]
    assert check["n_flagged"] == 0


def test_split_check_exact_split_not_flagged():
    frame = _frame({f"c{i}": (8 * i, i, i) for i in range(1, 40)})
    assert split_check(frame)["n_flagged"] == 0


# --- shot buckets -------------------------------------------------------------------------------


def test_shot_boundaries():
    assert shot_buckets(np.array([101])) == {"many": 1, "medium": 0, "few": 0}
    assert shot_buckets(np.array([100, 20])) == {"many": 0, "medium": 2, "few": 0}
    assert shot_buckets(np.array([19, 0])) == {"many": 0, "medium": 0, "few": 2}
    summary = summarize(
        _frame({"a": (101, 1, 1), "b": (100, 1, 1), "c": (20, 1, 1), "d": (19, 1, 1)}), source="t"
    )
    assert {k: summary["shots"][k] for k in ("many", "medium", "few")} == {
        "many": 1,
        "medium": 2,
        "few": 1,
    }


def test_small_frame_sizes_and_classes_per_split():
    frame = _frame({"a": (8, 1, 1), "b": (0, 2, 0), "c": (3, 0, 1), "d": (0, 0, 0)})
    summary = summarize(frame, source="t")
    assert summary["classes_per_split"] == {"total": 4, "train": 2, "val": 2, "test": 2}
    assert summary["images_per_split"] == {"train": 11, "val": 3, "test": 2, "total": 16}
    sizes = summary["class_sizes"]
    assert (sizes["min"], sizes["median"], sizes["max"]) == (0, 3, 10)
    assert sizes["max_class"] == {"class_id": "a", "species_name": "Species a"}
    assert sizes["classes_at_most_10"] == 4
    json.dumps(summary)


# --- a dataset folder ---------------------------------------------------------------------------


def _fake_dataset(root: Path) -> SimpleNamespace:
    """The attributes of `plantkit.data.layout.Dataset` the EDA uses, on real image files."""
    from PIL import Image

    images_dir = root / "images"
    class_ids = ["100", "200", "300"]
    per_split = {"train": [6, 3, 2], "val": [1, 1, 1], "test": [1, 1, 1]}
    splits = {}
    rng = np.random.default_rng(0)
    for split, counts in per_split.items():
        paths, labels, sizes = [], [], []
        for label, (cid, n) in enumerate(zip(class_ids, counts, strict=True)):
            folder = images_dir / split / cid
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(n):
                pixels = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
                target = folder / f"img{j}.jpg"
                Image.fromarray(pixels).save(target)
                paths.append(f"{split}/{cid}/{target.name}")
                labels.append(label)
                sizes.append(target.stat().st_size)
        splits[split] = SimpleNamespace(
            paths=paths, labels=np.array(labels, dtype=np.int64), sizes=np.array(sizes)
        )

    def counts() -> pd.DataFrame:
        frame = pd.DataFrame(
            {s: np.bincount(splits[s].labels, minlength=3) for s in ("train", "val", "test")},
            index=pd.Index(class_ids, name="class_id"),
        )
        frame.insert(0, "species_name", [names[c] for c in class_ids])
        return frame

    names = {"100": "Rosa canina L.", "200": "Bellis <perennis> & co", "300": "Poa annua L."}
    return SimpleNamespace(
        root=root,
        images_dir=images_dir,
        layout="splits",
        class_ids=class_ids,
        class_names=names,
        splits=splits,
        skipped={"train": 2, "val": 0, "test": 1},
        fingerprint="abc123",
        counts=counts,
        n_images=sum(len(s.paths) for s in splits.values()),
        image_path=lambda split, i: images_dir / splits[split].paths[i],
    )


def test_summary_with_dataset(tmp_path):
    ds = _fake_dataset(tmp_path / "ds")
    summary = summarize(ds.counts(), source=str(ds.root), dataset=ds)
    info = summary["dataset"]
    assert info["fingerprint"] == "abc123"
    assert info["layout"] == "splits"
    assert info["skipped_non_images"] == {"train": 2, "val": 0, "test": 1}
    assert info["skipped_non_images_total"] == 3
    assert info["n_images"] == 17
    assert summary["images_per_split"]["total"] == 17
    json.dumps(summary)


# --- terminal tables ----------------------------------------------------------------------------


def test_print_summary_tables(real_summary):
    console = Console(record=True, width=120)
    print_summary(real_summary, console)
    text = console.export_text()
    for needle in ("231", "1081", "125", "90 %", "Daucus carota", "9,012", "321"):
        assert needle in text
    assert "Classes per 10 % of the images" in text
    assert "0 of 1,081 classes flagged" in text
    assert "many" in text and "medium" in text and "few" in text


def test_print_summary_flagged_rows_and_dataset(tmp_path):
    rows = {f"c{i}": (50, 25, 25) for i in range(15)}
    summary = summarize(_frame(rows), source="skewed")
    console = Console(record=True, width=120)
    print_summary(summary, console)
    text = console.export_text()
    assert "15 of 15 classes flagged" in text
    assert "Flagged classes: 15; first 10 shown" in text
    assert "c9" in text and "c10" not in text

    ds = _fake_dataset(tmp_path / "ds")
    console = Console(record=True, width=120)
    print_summary(summarize(ds.counts(), source="ds", dataset=ds), console)
    assert "abc123" in console.export_text()


# --- HTML page ----------------------------------------------------------------------------------


def _no_network(page: str) -> None:
    """Every script is inline; no tag outside plotly.js loads anything from a URL.

    The inline plotly.js bundle itself mentions cdn.plot.ly (the default topojson URL of
    geo maps, which this page does not draw) and a few https links in its own strings;
    no tag or attribute of the page refers to them.
    """
    assert not re.search(r"<script[^>]*\bsrc=", page)
    bundles = re.findall(r"<script>/\*\*\s*\* plotly\.js v.*?</script>", page, flags=re.S)
    assert len(bundles) == 1  # the library is inlined exactly once
    rest = page.replace(bundles[0], "")
    assert "cdn.plot.ly" not in rest
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", rest)


def test_html_profile(tmp_path, real_summary):
    target = tmp_path / "out" / "eda.html"
    assert write_eda_html(target, real_summary) == target
    page = target.read_text(encoding="utf-8")
    assert page.count('class="plotly-graph-div"') == 2
    _no_network(page)
    assert "<img" not in page
    assert "augmented" not in page.lower()
    assert "Daucus carota" in page and "231" in page
    assert sorted(p.name for p in target.parent.iterdir()) == ["eda.html"]  # no temp files


def test_html_lists_flagged_classes(tmp_path):
    frame = _frame({"ok": (80, 10, 10), "skewed": (60, 20, 20), "lonely": (3, 0, 0)})
    page = write_eda_html(tmp_path / "f.html", summarize(frame, source="t")).read_text("utf-8")
    assert "2 class(es) flagged" in page
    assert "60 (80)" in page and "off by more than 1" in page and "empty val, empty test" in page


def test_html_with_dataset_and_augment_hook(tmp_path):
    from PIL import ImageOps

    ds = _fake_dataset(tmp_path / "ds")
    summary = summarize(ds.counts(), source=str(ds.root), dataset=ds)
    out = tmp_path / "report"
    page = write_eda_html(out / "a.html", summary, dataset=ds).read_text(encoding="utf-8")
    assert page.count('<img src="data:image/jpeg;base64,') == 14  # <= 3 per class and split
    assert "Bellis &lt;perennis&gt; &amp; co" in page
    assert "augmented" not in page.lower()
    _no_network(page)

    page = write_eda_html(out / "b.html", summary, dataset=ds, augment=ImageOps.mirror).read_text(
        encoding="utf-8"
    )
    assert "The same samples augmented" in page
    assert page.count('<img src="data:image/jpeg;base64,') == 2 * 14
    assert sorted(p.name for p in out.iterdir()) == ["a.html", "b.html"]


# --- CLI ----------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", "data", "inspect", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_json():
    result = _cli("--profile", "plantnet300k", "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["classes_per_decile"]["classes"] == REAL_DECILES
    assert payload["class_sizes"]["median"] == 27


def test_cli_tables():
    result = _cli("--profile", "plantnet300k")
    assert result.returncode == 0, result.stderr
    # The decile table's rows, in order: "10 %" -> 3 classes ... "100 %" -> 1081.
    rows = re.findall(r"^\W+(\d+) % \W+(\d+) \W+[\d.]+ % \W*$", result.stdout, flags=re.M)
    assert [(int(d), int(c)) for d, c in rows] == list(zip(range(10, 101, 10), REAL_DECILES))
    totals = re.search(r"^\W+total\W+([\d,]+)\W", result.stdout, flags=re.M)
    assert totals and totals.group(1) == "306,146"


def test_cli_refuses_root_and_profile_together(tmp_path):
    result = _cli("--data", str(tmp_path), "--profile", "plantnet300k")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]
    assert result.stdout == ""


def test_cli_dataset_root_with_html(plantnet_root, tmp_path):
    """End to end on a real folder read by plantkit.data.layout (conftest's tiny tree)."""
    (plantnet_root / "images" / "train" / "1355868" / "notes.txt").write_text("not an image")
    html = tmp_path / "report" / "eda.html"
    result = _cli("--data", str(plantnet_root), "--json", "--html", str(html))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["images_per_split"] == {"train": 15, "val": 3, "test": 3, "total": 21}
    assert payload["dataset"]["layout"] == "plantnet"
    assert payload["dataset"]["skipped_non_images"]["train"] == 1
    assert payload["class_sizes"]["max_class"]["species_name"] == "Lactuca virosa L."
    page = html.read_text(encoding="utf-8")
    # <= 3 per class and split, then the same samples through the --augment-below augmentation.
    assert page.count('<img src="data:image/jpeg;base64,') == 2 * ((3 + 2 + 3) + 3 + 3)
    assert "The same samples augmented" in page
    _no_network(page)
    assert sorted(p.name for p in html.parent.iterdir()) == ["eda.html"]


def test_cli_without_root_inspects_the_embedded_dataset(tmp_path, monkeypatch):
    """No ROOT and no --profile: the embedded stand-in is generated once, then reused."""
    from typer.testing import CliRunner

    from plantkit.commands.main import app
    from plantkit.data import embedded

    # A much smaller embedded dataset keeps this fast; the code path is the same.
    monkeypatch.setitem(embedded.EMBEDDED, "classes", 5)
    monkeypatch.setitem(embedded.EMBEDDED, "scale", 0.01)
    args = ["--artifacts", str(tmp_path), "data", "inspect", "--json", "--quiet"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    payload = json.loads(first.stdout)
    assert payload["classes_per_split"]["total"] == 5
    root = tmp_path / "data" / "embedded"
    assert payload["dataset"]["root"] == str(root)
    stamp = (root / "synth.json").stat().st_mtime_ns
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0
    assert (root / "synth.json").stat().st_mtime_ns == stamp  # reused, not regenerated
