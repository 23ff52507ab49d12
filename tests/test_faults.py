"""Faults a careful user meets: kill -9 at every write step, corrupted bytes, full and read-only
disks, two writers at once, hostile names. Each asserts what is on disk afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from plantkit.artifacts import (
    ArtifactBusy,
    artifact_lock,
    clean_leftovers,
    find_stores,
    replacing_dir,
    write_text,
)
from plantkit.artifacts.errors import environment_error
from plantkit.artifacts.protocol import OLD_MARK, TMP_MARK

HERE = Path(__file__).parent
PLANTKIT = [sys.executable, "-m", "plantkit.commands.main"]


def driver(scenario: str, work: Path, *extra: str, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, str(HERE / "fault_driver.py"), scenario, str(work), *extra],
        capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def plantkit(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*PLANTKIT, *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def hidden_leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*")
                  if TMP_MARK in p.name or OLD_MARK in p.name or p.name.endswith(".lock"))


# --- kill -9 at every step -------------------------------------------------------------------


@pytest.mark.slow
def test_training_killed_at_any_step_resumes_to_the_uninterrupted_expert(tmp_path):
    result = driver("train", tmp_path)
    assert result["steps"] > 30
    outcomes = result["outcomes"]
    assert all(o["killed"] for o in outcomes)
    bad = [o for o in outcomes if o["code"] != 0 or not o["same"] or o["leftovers"]]
    assert not bad, bad[:3]
    # Before the first epoch is committed --resume refuses, saying how to go on; after it,
    # --resume continues and ends with the same weights, logits, best epoch and history.
    first_resume = next(o["step"] for o in outcomes if o["how"] == "resume")
    assert all(o["how"].startswith("refused") for o in outcomes if o["step"] < first_resume)
    assert all(o["how"] == "resume" for o in outcomes if o["step"] >= first_resume)
    assert all("drop --resume" in o["how"] or "there is no run" in o["how"]
               for o in outcomes if o["how"] != "resume")
    assert sum(o["how"] == "resume" for o in outcomes) >= 20


@pytest.mark.slow
def test_combine_killed_at_any_step_leaves_only_complete_combinations(tmp_path):
    result = driver("combine", tmp_path)
    assert result["steps"] >= 10
    for o in result["outcomes"]:
        assert o["killed"], o
        # Listed right after the kill: the same combinations as before, every one readable.
        assert o["readable_after_kill"] and o["listed_after_kill"] == o["listed_before"], o
        assert o["code"] == 0 and o["same"] and not o["leftovers"], o


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two-renames"])
def test_synth_overwrite_killed_at_any_step_keeps_the_old_or_the_new_dataset(tmp_path, exchange):
    env = {} if exchange else {"PLANTKIT_NO_EXCHANGE": "1"}
    result = driver("synth", tmp_path, env=env)
    assert result["old_differs"]
    seen = set()
    for o in result["outcomes"]:
        assert o["killed"] and o["code"] == 0 and o["same"] and not o["leftovers"], o
        seen.add(o["after_kill"])
        if exchange:
            assert o["after_kill"] in ("old", "new"), o
    assert seen >= {"old", "new"}
    if not exchange:
        # Between the fallback's two renames the name is missing for a moment; the next
        # writer puts the complete old version back (checked by the rerun above).
        assert "none" in seen


def test_next_writer_recovers_a_complete_old_version_and_says_so(tmp_path):
    target = tmp_path / "ds"
    old = tmp_path / f".ds{OLD_MARK}1234"
    old.mkdir()
    (old / "file").write_text("complete old")
    (tmp_path / f".ds{TMP_MARK}abcd1234").mkdir()  # a half-written new version
    said = []
    with artifact_lock(target):
        removed = clean_leftovers(target, say=said.append)
    assert (target / "file").read_text() == "complete old"
    assert [p.name for p in removed] == [f".ds{TMP_MARK}abcd1234"]
    assert len(said) == 1 and "recovered" in said[0] and str(target) in said[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_hidden_leftovers_are_never_listed_as_stores(tmp_path):
    sys.path.insert(0, str(HERE))
    from combine_helpers import make_experts

    make_experts(tmp_path, n_val=20, n_test=20)
    experts = tmp_path / "experts"
    # What killed writers leave: a temporary expert folder, a temporary store, an old one.
    for hidden in (f".tiny{TMP_MARK}0a0b0c0d", f".small{OLD_MARK}99"):
        (experts / hidden).mkdir()
        (experts / hidden / "predictions.h5").write_bytes(
            (experts / "tiny" / "predictions.h5").read_bytes())
    (experts / "tiny" / f".predictions.h5{TMP_MARK}00ff00ff").write_bytes(b"half")
    names = [p.parent.name for p in find_stores(tmp_path)]
    assert names == ["large", "medium", "small", "tiny"]
    code = plantkit("--artifacts", tmp_path, "report", "--json")
    assert code.returncode == 0, code.stderr
    shown = {r["name"] for r in json.loads(code.stdout)["splits"]["test"]["leaderboard"]}
    assert shown == {"large", "medium", "small", "tiny"}


# --- corrupted bytes ---------------------------------------------------------------------------


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x55
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory):
    """A tiny trained expert `x` (2 epochs) under a fresh artifacts root, and its dataset."""
    sys.path.insert(0, str(HERE))
    work = tmp_path_factory.mktemp("trained")
    code = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys; sys.path.insert(0, {str(HERE)!r})
            import torch; torch.set_num_threads(1)
            from pathlib import Path
            import fault_driver as fd
            work = Path({str(work)!r})
            fd._train(fd._train_setup(work), work / "art")
        """)], capture_output=True, text=True, timeout=300)
    assert code.returncode == 0, code.stderr
    return work


def _copy_tree(source: Path, target: Path) -> Path:
    import shutil

    shutil.copytree(source, target)
    return target


def test_corrupt_expert_weights_are_refused_and_the_store_is_kept(trained_root, tmp_path):
    root = _copy_tree(trained_root / "art", tmp_path / "art")
    weights = root / "experts" / "x" / "weights.pt"
    store = root / "experts" / "x" / "predictions.h5"
    before = store.read_bytes()
    _flip(weights, len(weights.read_bytes()) // 2)
    result = plantkit("--artifacts", root, "predict", "--expert", "x", "--split", "val",
                      "--data", trained_root / "data", "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(weights) in lines[0] and "corrupt" in lines[0]
    assert store.read_bytes() == before  # never overwritten from a corrupted input


@pytest.mark.parametrize("victim", ["state.weights.h5", "weights.pt"])
def test_corrupt_checkpoint_is_refused_on_resume(trained_root, tmp_path, victim):
    root = _copy_tree(trained_root / "art", tmp_path / "art")
    checkpoints = root / "experts" / "x" / "checkpoints"
    state = json.loads((checkpoints / "state.json").read_text())
    path = checkpoints / state["last"] / victim
    _flip(path, len(path.read_bytes()) // 2)
    result = plantkit("--artifacts", root, "train", "--resume", "--expert", "x", "--epochs", "3",
                      "--quiet")
    assert result.returncode == 2, result.stderr
    assert str(path) in result.stderr and "corrupt" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- two writers -------------------------------------------------------------------------------

HOLDER = """
import sys
from plantkit.artifacts import artifact_lock
with artifact_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()
"""


class Holder:
    """Another process that holds the lock of `artifact` until released."""

    def __init__(self, artifact: Path):
        self.process = subprocess.Popen([sys.executable, "-c", HOLDER, str(artifact)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"

    def release(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        self.process.wait(timeout=30)


def test_a_second_writer_is_refused_at_once_naming_the_other_process(tmp_path):
    holder = Holder(tmp_path / "experts" / "e")
    try:
        with pytest.raises(ArtifactBusy, match=f"pid {holder.process.pid}"):
            with artifact_lock(tmp_path / "experts" / "e"):
                pass
        np.save(tmp_path / "l.npy", np.zeros((3, 2), dtype=np.float32))
        np.save(tmp_path / "y.npy", np.zeros(3, dtype=np.int64))
        (tmp_path / "c.json").write_text('["a", "b"]')
        result = plantkit("--artifacts", tmp_path, "import", "logits", "--expert", "e",
                          "--split", "val", "--logits", tmp_path / "l.npy",
                          "--labels", tmp_path / "y.npy", "--classes", tmp_path / "c.json")
        assert result.returncode == 2
        assert f"pid {holder.process.pid}" in result.stderr and "--wait" in result.stderr
        assert not (tmp_path / "experts" / "e" / "predictions.h5").exists()
    finally:
        holder.release()
    # Nothing of the lock is left once both are done.
    assert hidden_leftovers(tmp_path) == []


def test_wait_queues_behind_the_other_writer(tmp_path):
    target = tmp_path / "ds"
    holder = Holder(target)
    waiting = subprocess.Popen(
        [*PLANTKIT, "--wait", "data", "synth", "--profile", "uniform", "--classes", "2",
         "--scale", "0.002", "--image-size", "32", "--out", str(target)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = waiting.stderr.readline()
    assert "waiting for" in first and str(target) in first
    assert not target.exists()
    holder.release()
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert (target / "synth.json").is_file()


def test_readers_see_complete_versions_while_a_writer_replaces(tmp_path):
    target = tmp_path / "artifact"
    with replacing_dir(target) as tmp:
        (tmp / "a").write_text("1")
        (tmp / "b").write_text("1")
    reader_view = []
    with replacing_dir(target) as tmp:
        (tmp / "a").write_text("2")
        (tmp / "b").write_text("2")
        reader_view.append(((target / "a").read_text(), (target / "b").read_text()))
    reader_view.append(((target / "a").read_text(), (target / "b").read_text()))
    assert reader_view == [("1", "1"), ("2", "2")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]


# --- the environment ---------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 512 KiB tmpfs (needs root and mount rights; skipped where they are missing)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _logit_files(tmp_path: Path, rows: int, classes: int) -> list[str]:
    np.save(tmp_path / "l.npy", np.random.default_rng(0).normal(size=(rows, classes))
            .astype(np.float32))
    np.save(tmp_path / "y.npy", np.zeros(rows, dtype=np.int64))
    (tmp_path / "c.json").write_text(json.dumps([f"c{i}" for i in range(classes)]))
    return ["--logits", str(tmp_path / "l.npy"), "--labels", str(tmp_path / "y.npy"),
            "--classes", str(tmp_path / "c.json")]


def test_a_full_disk_is_one_line_exit_2_and_nothing_half_written(tmp_path, tiny_disk):
    files = _logit_files(tmp_path, 2000, 300)  # 2.4 MB of float32 logits for 512 KiB
    result = plantkit("--artifacts", tiny_disk / "art", "import", "logits", "--expert", "e",
                      "--split", "val", *files)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left" in lines[0]
    assert str(tiny_disk / "art" / "experts" / "e" / "predictions.h5") in lines[0]
    assert list(tiny_disk.iterdir()) == []  # no temporary, no empty folders


def test_a_full_disk_during_training_is_one_line_exit_2(trained_root, tiny_disk):
    result = plantkit("--artifacts", tiny_disk / "art", "train", "--data",
                      trained_root / "data", "--arch", "resnet18", "--epochs", "1",
                      "--resize", "32", "--crop", "24", "--workers", "0", "--quiet")
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left" in lines[0] and str(tiny_disk) in lines[0]
    assert hidden_leftovers(tiny_disk) == []


def test_a_read_only_root_is_one_line_exit_2(tmp_path, tiny_disk):
    files = _logit_files(tmp_path, 10, 3)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    result = plantkit("--artifacts", tiny_disk / "art", "import", "logits", "--expert", "e",
                      "--split", "val", *files)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "read-only" in lines[0] and str(tiny_disk) in lines[0]


def test_wrong_file_types_are_one_line_exit_2(tmp_path):
    files = _logit_files(tmp_path, 10, 3)
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    result = plantkit("--artifacts", a_file, "import", "logits", "--expert", "e", "--split",
                      "val", *files)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert str(a_file) in result.stderr and "file stands where a folder" in result.stderr
    assert a_file.read_text() == "x"

    art = tmp_path / "art"
    assert plantkit("--artifacts", art, "import", "logits", "--expert", "e", "--split", "val",
                    *files).returncode == 0
    folder = tmp_path / "page.html"
    folder.mkdir()
    result = plantkit("--artifacts", art, "report", "--html", folder)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert str(folder) in result.stderr and "is a folder: give a file path" in result.stderr
    assert list(folder.iterdir()) == [] and hidden_leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["../../evil", "..", ".hidden", "a/b", "", "x" * 200])
def test_names_cannot_escape_the_artifacts_root(tmp_path, name):
    art = tmp_path / "deep" / "art"
    result = plantkit("--artifacts", art, "train", "--expert", name, "--epochs", "1")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--expert" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_environment_errors_name_the_artifact_not_the_temporary(tmp_path):
    hidden = tmp_path / "experts" / "e" / f".predictions.h5{TMP_MARK}0a1b2c3d"
    error = OSError(f"Can't write data (file write failed: filename = '{hidden}', errno = 28, "
                    "error message = 'No space left on device')")
    message = str(environment_error(error))
    assert str(tmp_path / "experts" / "e" / "predictions.h5") in message
    assert "no space left" in message and TMP_MARK not in message
    assert environment_error(ValueError("something else")) is None


def test_writes_without_a_covering_lock_take_their_own(tmp_path):
    holder = Holder(tmp_path / "report.html")
    try:
        with pytest.raises(ArtifactBusy):
            write_text(tmp_path / "report.html", "page")
    finally:
        holder.release()
    write_text(tmp_path / "report.html", "page")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


FORKING_HOLDER = """
import os, sys, time
from plantkit.artifacts import artifact_lock
with artifact_lock(sys.argv[1]):
    if os.fork() == 0:  # like a data-loading worker: outlives its killed parent a while
        time.sleep(30)
        os._exit(0)
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_killed_writers_forked_workers_do_not_keep_its_lock(tmp_path):
    import signal

    holder = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(tmp_path / "e")],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ArtifactBusy):
            with artifact_lock(tmp_path / "e"):
                pass
        holder.kill()  # kill -9 of the writer; its forked child lives on
        holder.wait(timeout=30)
        with artifact_lock(tmp_path / "e"):
            pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)


@pytest.mark.parametrize(("signum", "code"), [(2, 130), (15, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_training_says_so_cleans_up_and_resumes(trained_root, tmp_path, signum,
                                                              code):
    import time

    art = tmp_path / "art"
    args = ["--artifacts", art, "train", "--data", trained_root / "data", "--arch",
            "test_resnet", "--epochs", "400", "--resize", "32", "--crop", "24", "--workers",
            "0", "--expert", "x", "--quiet"]
    process = subprocess.Popen([*PLANTKIT, *map(str, args)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    state = art / "experts" / "x" / "checkpoints" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == code, err
    assert err.strip().splitlines() == [
        "interrupted; finished work is kept, unfinished work was not written"]
    assert hidden_leftovers(art) == []
    resumed = plantkit(*map(str, args[:-3]), "--epochs", "2", "--resume", "--expert", "x",
                       "--quiet")
    # --epochs 2 with a run already past epoch 2 finishes at once, from its last epoch.
    assert resumed.returncode == 0, resumed.stderr
    assert (art / "experts" / "x" / "predictions.h5").is_file()


def test_paths_with_markup_characters_are_printed_literally(tmp_path):
    odd = tmp_path / "run[v2]" / "x[/bold]y"
    result = plantkit("--artifacts", odd, "report", odd / "[red]none")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {odd / '[red]none'} does not exist: give store files or folders"]
