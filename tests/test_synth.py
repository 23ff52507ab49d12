"""The synthetic dataset generator: layout, JSON files, determinism, atomicity, CLI."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
import sys
from dataclasses import astuple, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import process_running
from PIL import Image

from plantkit.data.layout import CLASS_INDEX_FILE, METADATA_FILE, NAMES_FILE, class_order
from plantkit.data.profiles import SPLITS, make_profile
from plantkit.data.species import assign_genera, genus_of, make_species_table
from plantkit.data.synth import SYNTH_FILE, generate_dataset
from plantkit.errors import PlantkitInputError

SIZE = 16  # the smallest allowed: fastest


def small_counts(ids=("10", "9", "100"), train=3, val=1, test=2) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "species_name": [f"Genus{i} species{i}" for i in range(len(ids))],
            "train": train,
            "val": val,
            "test": test,
        },
        index=pd.Index(list(ids), name="class_id"),
    )
    return frame


def file_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture(scope="module")
def uniform_dataset(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    counts = make_profile("uniform", classes=3, scale=0.002)
    root = generate_dataset(tmp_path_factory.mktemp("u") / "ds", counts, image_size=SIZE, seed=3)
    return root, counts


def test_layout_and_json_agree_with_counts(uniform_dataset):
    root, counts = uniform_dataset
    assert root.name == "ds"
    for name in (NAMES_FILE, METADATA_FILE, CLASS_INDEX_FILE, SYNTH_FILE):
        assert (root / name).is_file()
    metadata = json.loads((root / METADATA_FILE).read_text())
    for split in SPLITS:
        for class_id, row in counts.iterrows():
            files = sorted((root / "images" / split / class_id).glob("*.jpg"))
            assert len(files) == row[split]
            for f in files:
                assert len(f.stem) == 40 and all(c in "0123456789abcdef" for c in f.stem)
                assert metadata[f.stem]["species_id"] == class_id
                assert metadata[f.stem]["split"] == split
    assert len(metadata) == int(counts[list(SPLITS)].to_numpy().sum())
    names = json.loads((root / NAMES_FILE).read_text())
    assert names == counts["species_name"].to_dict()
    summary = json.loads((root / SYNTH_FILE).read_text())
    assert summary["image_size"] == SIZE and summary["seed"] == 3
    assert summary["classes"] == 3
    assert summary["images"]["total"] == len(metadata)
    assert {m["organ"] for m in metadata.values()} <= {"leaf", "flower", "fruit", "bark", "habit"}
    # The folder gets a plain mkdir's permissions, not the private ones of a temp folder.
    plain = root.parent / "plain"
    plain.mkdir(exist_ok=True)
    assert stat.S_IMODE(root.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_images_decode_at_the_requested_size(uniform_dataset, tmp_path):
    root, _ = uniform_dataset
    files = list(root.glob("images/*/*/*.jpg"))
    assert files
    for f in files:
        with Image.open(f) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and img.size == (SIZE, SIZE)
            img.load()
    other = generate_dataset(tmp_path / "big", small_counts(train=1, val=0, test=0), image_size=40)
    for f in other.glob("images/*/*/*.jpg"):
        with Image.open(f) as img:
            assert img.size == (40, 40)
    # Not blank: a drawing has contrast.
    arr = np.asarray(Image.open(files[0]), dtype=float)
    assert arr.std() > 5


def test_class_index_follows_numeric_then_text_order(tmp_path):
    root = generate_dataset(
        tmp_path / "num", small_counts(("10", "9", "100"), 2, 1, 1), image_size=SIZE
    )
    mapping = json.loads((root / CLASS_INDEX_FILE).read_text())
    assert mapping == {"0": "9", "1": "10", "2": "100"}
    assert class_order(["b", "a", "10", "9"]) == ["10", "9", "a", "b"]
    root = generate_dataset(
        tmp_path / "txt", small_counts(("b", "a", "10"), 2, 1, 1), image_size=SIZE
    )
    assert json.loads((root / CLASS_INDEX_FILE).read_text()) == {"0": "10", "1": "a", "2": "b"}


def test_same_seed_byte_identical_other_seed_different(tmp_path):
    counts = make_profile("plantnet300k", classes=6, scale=0.002)
    a = file_hashes(generate_dataset(tmp_path / "a", counts, image_size=SIZE, seed=7))
    b = file_hashes(generate_dataset(tmp_path / "b", counts, image_size=SIZE, seed=7))
    assert a == b
    c = file_hashes(generate_dataset(tmp_path / "c", counts, image_size=SIZE, seed=8))
    images_a = {h for p, h in a.items() if p.endswith(".jpg")}
    images_c = {h for p, h in c.items() if p.endswith(".jpg")}
    assert len(images_a) == len(a) - 4  # all images distinct
    assert not images_a & images_c
    assert {p for p in a if p.endswith(".jpg")}.isdisjoint(c)  # image ids depend on the seed
    # Same species, other seed: the id-to-name and class-index files are unchanged.
    for name in (NAMES_FILE, CLASS_INDEX_FILE):
        assert a[name] == c[name]


def test_refuses_non_empty_target_unless_forced(tmp_path):
    target = tmp_path / "ds"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(PlantkitInputError, match="--overwrite") as info:
        generate_dataset(target, small_counts(), image_size=SIZE)
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert (target / "precious.txt").read_text() == "keep me"
    # --overwrite replaces only a generated dataset, never an arbitrary folder.
    with pytest.raises(PlantkitInputError, match="not a generated dataset"):
        generate_dataset(target, small_counts(), image_size=SIZE, overwrite=True)
    assert (target / "precious.txt").read_text() == "keep me"
    (target / "precious.txt").unlink()
    generate_dataset(target, small_counts(), image_size=SIZE)
    (target / "stale.txt").write_text("left by an older generation")
    generate_dataset(target, small_counts(), image_size=SIZE, overwrite=True)
    assert not (target / "stale.txt").exists()
    assert (target / METADATA_FILE).is_file()
    assert leftovers(tmp_path) == []
    # An empty folder is fine without --overwrite; a file is never replaced.
    empty = tmp_path / "empty"
    empty.mkdir()
    generate_dataset(empty, small_counts(), image_size=SIZE)
    assert (empty / SYNTH_FILE).is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlantkitInputError, match="file"):
        generate_dataset(tmp_path / "file", small_counts(), image_size=SIZE, overwrite=True)


def test_failure_midway_leaves_nothing_behind(tmp_path):
    calls = []

    def boom(n: int) -> None:
        calls.append(n)
        raise KeyboardInterrupt

    counts = small_counts(train=40)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "ds", counts, image_size=SIZE, on_image=boom)
    assert calls and sorted(p.name for p in tmp_path.iterdir()) == []
    # A forced replacement that fails keeps the old dataset.
    old = generate_dataset(tmp_path / "ds", small_counts(), image_size=SIZE)
    before = file_hashes(old)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(old, counts, image_size=SIZE, overwrite=True, on_image=boom)
    assert file_hashes(old) == before
    assert leftovers(tmp_path) == []


def test_progress_callback_counts_every_image(tmp_path):
    seen = []
    counts = small_counts(train=30, val=3, test=5)
    generate_dataset(tmp_path / "ds", counts, image_size=SIZE, on_image=seen.append)
    assert sum(seen) == 3 * 38 and all(n > 0 for n in seen)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 15}, "at least 16"),
        ({"image_size": 4}, "at least 16"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(PlantkitInputError, match=match):
        generate_dataset(tmp_path / "ds", small_counts(), **kwargs)
    assert not (tmp_path / "ds").exists()


def test_bad_counts(tmp_path):
    with pytest.raises(PlantkitInputError, match="column"):
        generate_dataset(tmp_path / "ds", small_counts().drop(columns="val"))
    bad = small_counts()
    bad.loc["9", "train"] = -1
    with pytest.raises(PlantkitInputError, match="non-negative"):
        generate_dataset(tmp_path / "ds", bad)
    with pytest.raises(PlantkitInputError, match="folder name"):
        generate_dataset(tmp_path / "ds", small_counts(("a/b", "c", "d")))


def test_genus_siblings_share_organ_and_shape():
    assert genus_of("Lactuca virosa L.") == "Lactuca"
    assert genus_of("Species 007") is None
    counts = make_profile("plantnet300k")
    species = make_species_table(list(counts.index), counts["species_name"].to_list())
    by_genus: dict[str, set] = {}
    for sp in species:
        by_genus.setdefault(sp.genus, set()).add((sp.organ, sp.shape, sp.margin))
    assert len(by_genus) == 303
    assert all(len(v) == 1 for v in by_genus.values())
    organs = {sp.organ for sp in species}
    assert organs == {"leaf", "flower", "fruit", "bark", "habit"}
    # Siblings are not clones.
    sedum = [sp for sp in species if sp.genus == "Sedum"]
    assert len({astuple(replace(sp, class_id="")) for sp in sedum}) == len(sedum)
    # Names that are not binomials: consecutive classes form genera of three.
    genera = assign_genera(["0", "1", "2", "3"], ["Species 0"] * 4)
    assert genera[0] == genera[1] == genera[2] != genera[3]


def test_cli_synth(tmp_path):
    from typer.testing import CliRunner

    from plantkit.commands.main import app

    args = ["--artifacts", str(tmp_path), "data", "synth", "--profile", "uniform"]
    args += ["--classes", "3", "--scale", "0.002", "--image-size", "16", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    root = tmp_path / "data" / "uniform-synth"
    assert len(list(root.glob("images/*/*/*.jpg"))) == 3 * 18
    assert json.loads((root / SYNTH_FILE).read_text())["image_size"] == 16
    # Again: the folder is not empty. CliRunner bypasses run(), so the error surfaces as is.
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, PlantkitInputError)
    assert "--overwrite" in str(result.exception)
    result = CliRunner().invoke(app, [*args, "--overwrite", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads((root / SYNTH_FILE).read_text())["seed"] == 1
    assert leftovers(root.parent) == []


def test_cli_bad_image_size_exits_2(tmp_path):
    cmd = [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(tmp_path)]
    cmd += ["data", "synth", "--profile", "uniform", "--classes", "2", "--image-size", "4", "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "image-size" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "uniform-synth").exists()


@pytest.fixture
def small_pools(monkeypatch):
    """Pools even for a few images (a process is otherwise started per 1000 images)."""
    monkeypatch.setattr("plantkit.data.synth.MIN_IMAGES_PER_WORKER", 1)


def test_workers_write_byte_identical_files(tmp_path, small_pools, monkeypatch):
    # Uneven counts, a class with none in a split: chunks cut across classes and splits.
    counts = small_counts(("10", "9", "100", "a"), train=5, val=1, test=2)
    counts.loc["9", "val"] = 0
    counts.loc["a", "train"] = 13
    one = generate_dataset(tmp_path / "one", counts, image_size=SIZE, seed=5, workers=1)
    zero = generate_dataset(tmp_path / "zero", counts, image_size=SIZE, seed=5, workers=0)

    def not_here(*args):
        raise AssertionError("workers=2 drew in this process")

    monkeypatch.setattr("plantkit.data.synth._draw_here", not_here)
    seen: list[int] = []
    two = generate_dataset(tmp_path / "two", counts, image_size=SIZE, seed=5, workers=2,
                           on_image=seen.append)
    hashes = file_hashes(one)
    assert hashes == file_hashes(two) == file_hashes(zero)
    assert {NAMES_FILE, METADATA_FILE, CLASS_INDEX_FILE, SYNTH_FILE} <= set(hashes)
    assert len(hashes) == 4 + int(counts[list(SPLITS)].to_numpy().sum())
    assert sum(seen) == len(hashes) - 4 and len(seen) > 1  # the bar moves chunk by chunk
    assert leftovers(tmp_path) == []


def test_failure_midway_with_workers_leaves_nothing_behind(tmp_path, small_pools):
    def boom(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "ds", small_counts(train=40), image_size=SIZE, workers=2,
                         on_image=boom)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("workers", [-1, 1.5, True])
def test_bad_workers(tmp_path, workers):
    with pytest.raises(PlantkitInputError, match="--workers"):
        generate_dataset(tmp_path / "ds", small_counts(), image_size=SIZE, workers=workers)
    assert not (tmp_path / "ds").exists()


def test_cli_bad_workers_exits_2(tmp_path):
    from cli_helpers import refused

    line = refused("--artifacts", tmp_path, "data", "synth", "--profile", "uniform",
                   "--classes", "2", "--image-size", "16", "--workers", "-2", "-q")
    assert "--workers must be 0 or more, got -2" in line
    assert not (tmp_path / "data").exists()


def test_drawing_processes_exit_when_the_parent_is_killed(tmp_path):
    import os
    import signal
    import time

    script = tmp_path / "parent.py"
    script.write_text(
        "import multiprocessing, sys, time\n"
        "import pandas as pd\n"
        "import plantkit.data.synth as synth\n"
        "def hang(n):\n"
        "    print(*(p.pid for p in multiprocessing.active_children()), flush=True)\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    synth.MIN_IMAGES_PER_WORKER = 1\n"
        "    counts = pd.DataFrame({'species_name': ['A a', 'B b'], 'train': 40, 'val': 1,\n"
        "                           'test': 1}, index=['1', '2'])\n"
        "    synth.generate_dataset(sys.argv[1], counts, image_size=16, workers=2,\n"
        "                           on_image=hang)\n")
    target = tmp_path / "ds"
    parent = subprocess.Popen([sys.executable, str(script), str(target)],
                              stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2

    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # plantkit.parent_watch.PARENT_CHECK_S is 1 s
        if not any(map(process_running, workers)):
            break
        time.sleep(0.1)
    else:
        for pid in workers:
            if process_running(pid):
                os.kill(pid, signal.SIGKILL)
        raise AssertionError("a drawing process outlived its killed parent")
    # The killed run left its unfinished folder, not a dataset; the next run clears it.
    assert not target.exists() and leftovers(tmp_path)
    generate_dataset(target, small_counts(), image_size=SIZE)
    assert leftovers(tmp_path) == []
