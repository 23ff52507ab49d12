"""`plantkit classify`: every combination (router aside) is a runnable model whose per-image
probabilities are the ones its stored predictions give, with the cascade's later experts run
only on the images still unsure (the measured GFLOPs equal the expected ones on test).

3 tiny experts of different costs (test_convnext, mobilenetv3_small_050, test_resnet; one
epoch at 32 px) on a 3-class synthetic dataset keep the module to well under a minute.
"""

from __future__ import annotations

import csv
import json
import shutil

import plantkit.backend  # noqa: F401  (keras on the torch backend, before keras is imported)

import numpy as np  # isort: skip
import pandas as pd
import pytest
from cli_helpers import cli, one_torch_thread, refused  # noqa: F401 (an autouse fixture)
from test_fast_refusals import refusals

from plantkit.combine.apply import ROUTER_REFUSAL
from plantkit.data.synth import generate_dataset
from plantkit.metrics import softmax
from plantkit.store import open_store

TINY = ["--resize", "40", "--crop", "32", "--workers", "0", "--milestones", "1", "--lr",
        "0.05", "--epochs", "1", "--quiet"]
EXPERTS = {"conv": "test_convnext", "mobile": "mobilenetv3_small_050", "small": "test_resnet"}
METHODS = ("average", "weighted", "greedy", "temperature", "logit-adjust", "cascade",
           "alt-average", "alt-weighted", "alt-cascade", "alt-logit-adjust",
           "on-expert-logit-adjust")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(artifacts root, dataset root): 3 experts and every combination, router included."""
    base = tmp_path_factory.mktemp("classify")
    counts = pd.DataFrame({"species_name": [f"Species {i}" for i in range(3)],
                           "train": [16] * 3, "val": [20] * 3, "test": [12] * 3},
                          index=pd.Index(range(3), name="class_id"))
    data = generate_dataset(base / "data", counts, image_size=40)
    art = base / "art"
    for name, arch in EXPERTS.items():
        code, _, err = cli("--artifacts", art, "train", "--data", data, "--arch", arch,
                           "--expert", name, *TINY)
        assert code == 0, err
    code, _, err = cli("--artifacts", art, "combine", "--average", "--weighted", "--greedy",
                       "--temperature", "--logit-adjust", "auto", "--cascade", "--router",
                       "--quiet")
    assert code == 0, err
    # The other forms: logits space, accuracy weights (uncalibrated), a budget cascade, logit
    # adjustment of a cascade and of an expert.
    for extra in (["--average", "--space", "logits", "--weighted", "--weight-by", "accuracy",
                   "--cascade", "--budget", "0.004", "--logit-adjust", "0.5", "--adjust-on",
                   "cascade", "--prefix", "alt"],
                  ["--logit-adjust", "1", "--adjust-on", "small", "--prefix", "on-expert"]):
        code, _, err = cli("--artifacts", art, "combine", *extra, "--quiet")
        assert code == 0, err
    return art, data


def classified(art, *args) -> dict:
    code, out, err = cli("--artifacts", art, "classify", *map(str, args), "--workers", "0",
                         "--json")
    assert code == 0, err
    return json.loads(out)


def stored_probs(art, name: str) -> dict[str, np.ndarray]:
    """The stored test predictions of an expert or combination, by image path."""
    kind = "combos" if (art / "combos" / name).is_dir() else "experts"
    with open_store(art / kind / name / "predictions.h5") as store:
        return dict(zip(store.paths("test"), softmax(store.logits("test"))))


@pytest.mark.parametrize("name", [*METHODS, *EXPERTS])
def test_classify_gives_the_stored_predictions(trained, name):
    art, data = trained
    result = classified(art, data / "images" / "test", "--with", name, "--top", "3")
    stored = stored_probs(art, name)
    assert len(result["images"]) == len(stored) == 36
    for image in result["images"]:
        key = image["path"].split("/images/", 1)[1]
        expected = stored[key]
        top = image["top"]
        assert [t["rank"] for t in top] == [1, 2, 3]
        assert int(top[0]["species_id"]) == int(np.argmax(expected))
        got = np.zeros(3)
        for entry in top:
            got[int(entry["species_id"])] = entry["probability"]
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert top[0]["species_name"] == f"Species {top[0]['species_id']}"
    cost = result["cost"]
    # On the test split the measured cost is the one combine expected from its stops.
    assert cost["measured_gflops_per_image"] == pytest.approx(
        cost["expected_gflops_per_image"], rel=1e-9)
    assert cost["images"] == 36 and cost["images_per_s"] > 0


def test_cascade_runs_later_experts_only_on_unsure_images(trained):
    art, data = trained
    result = classified(art, data / "images" / "test", "--with", "cascade")
    document = json.loads((art / "combos" / "cascade" / "combination.json").read_text())
    order = document["params"]["order"]
    share = np.bincount([len(image["experts"]) - 1 for image in result["images"]],
                        minlength=len(order)) / 36
    # The experts that ran on each image: a prefix of the cheapest-first order, and as many
    # images stop at each stage as combine counted on test.
    for image in result["images"]:
        assert image["experts"] == order[:len(image["experts"])]
    np.testing.assert_allclose(share, document["params"]["test_stop_share"])
    # The seeded tiny experts leave images at the first stage and later ones: the test can
    # tell a cascade that runs every expert on every image.
    assert 0 < share[0] < 1
    assert result["cost"]["expert_images"][order[0]] == 36


def test_csv_rows_and_json_shape(trained, tmp_path):
    art, data = trained
    target = tmp_path / "out.csv"
    result = classified(art, data / "images" / "test" / "0", "--with", "greedy", "--top", "2",
                        "--csv", target)
    assert set(result) >= {"name", "method", "images", "skipped", "cost"}
    assert set(result["cost"]) >= {"images_per_s", "wall_s", "measured_gflops_per_image",
                                   "expected_gflops_per_image"}
    with open(target, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["path", "rank", "species_id", "species_name", "probability", "experts"]
    assert len(rows) == 1 + 2 * len(result["images"]) == 1 + 2 * 12
    first = result["images"][0]
    assert rows[1] == [first["path"], "1", first["top"][0]["species_id"],
                       first["top"][0]["species_name"], repr(first["top"][0]["probability"]),
                       "+".join(first["experts"])]
    assert rows[2][1] == "2"


def test_a_kill_while_writing_the_csv_leaves_the_old_file_or_the_new_one(trained, tmp_path):
    import os
    import subprocess
    import sys

    art, data = trained
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    args = [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(art), "classify",
            str(data / "images" / "test" / "0"), "--with", "average", "--csv", str(target),
            "--quiet", "--workers", "0", "--json"]
    # A first run logs the write protocol's steps; then SIGKILL at each step of the CSV's.
    log = tmp_path / "steps.log"
    run = subprocess.run(args, env={**os.environ, "PLANTKIT_FAULT_LOG": str(log)},
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    new = target.read_text()
    assert new.startswith("path,rank,") and new.count("\n") == 1 + 3 * 12  # top 3 of 3
    steps = [int(line.split("\t")[0]) for line in log.read_text().splitlines()
             if "out.csv" in line]
    log.unlink()
    assert len(steps) >= 2
    for step in steps:
        target.write_text("old\n")
        env = {**os.environ, "PLANTKIT_FAULT_AT": str(step)}
        run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode == -9, run.stderr
        assert target.read_text() in ("old\n", new), step
    run = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and target.read_text() == new
    # The finished write removed what the killed ones left.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_unreadable_image_is_skipped_with_a_warning(trained, tmp_path):
    art, data = trained
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted((data / "images" / "test" / "1").iterdir())[:3]:
        shutil.copy(source, folder / source.name)
    (folder / "broken.jpg").write_bytes(b"not an image")
    code, out, err = cli("--artifacts", art, "classify", folder, "--with", "average",
                         "--workers", "0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["images"]) == 3
    assert [s["path"] for s in result["skipped"]] == [str(folder / "broken.jpg")]
    warning = [line for line in err.splitlines() if "unreadable" in line]
    assert len(warning) == 1 and "broken.jpg" in warning[0]


def test_refusals(trained, tmp_path):
    art, data = trained
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no image found" in refused("--artifacts", art, "classify", empty, "--with", "average")
    assert refused("--artifacts", art, "classify", data / "images" / "test", "--with",
                   "router").endswith(ROUTER_REFUSAL)


def test_a_changed_or_missing_expert_is_refused_by_name(trained, tmp_path):
    from plantkit.models.expert import load_expert, save_expert

    art, data = trained
    copy = tmp_path / "art"
    shutil.copytree(art, copy)
    folder = copy / "experts" / "small"
    document = json.loads((folder / "expert.json").read_text())
    expert = load_expert(folder)  # retrained, say: other weights under the same name
    for weight in expert.backbone.parameters():
        weight.data.add_(0.01)
    save_expert(expert, folder, class_ids=document["class_ids"],
                fingerprint=document["fingerprint"])
    line = refused("--artifacts", copy, "classify", data / "images" / "test", "--with", "average")
    assert "expert small changed since combination average was fitted" in line
    shutil.rmtree(copy / "experts" / "mobile")
    line = refused("--artifacts", copy, "classify", data / "images" / "test", "--with", "cascade")
    assert "expert mobile of combination cascade is missing" in line


def test_bad_inputs_are_refused_before_torch(trained, tmp_path):
    art, data = trained
    images = str(data / "images" / "test")
    base = ["--artifacts", str(art), "classify"]
    cases = [
        [*base, str(tmp_path / "nowhere"), "--with", "average"],
        [*base, images, "--with", "nothing-of-that-name"],
        [*base, images, "--with", "average", "--top", "0"],
        [*base, images, "--with", "average", "--csv", str(tmp_path)],
        [*base, images, "--with", "router"],
        [*base, images, "--with", "average", "--batch-size", "0"],
    ]
    results = refusals(cases)
    for case, result in zip(cases, results):
        assert result["code"] == 2 and len(result["lines"]) == 1, (case, result)
        assert result["heavy"] == [], (case, result)
    lines = [r["lines"][0] for r in results]
    assert "does not exist" in lines[0] and "nothing-of-that-name" in lines[1]
    assert "--top" in lines[2] and "--csv" in lines[3] and ROUTER_REFUSAL in lines[4]
