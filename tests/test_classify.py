"""`plantkit classify`: every combination is a runnable model whose per-image probabilities
are the ones its stored predictions give, with the cascade's later experts run only on the
images still unsure and a top-k router's experts only on the images they are chosen for (the
measured GFLOPs equal the expected ones on test).

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

from plantkit.data.synth import generate_dataset
from plantkit.metrics import softmax
from plantkit.store import open_store

TINY = ["--resize", "40", "--crop", "32", "--workers", "0", "--milestones", "1", "--lr",
        "0.05", "--epochs", "1", "--quiet"]
EXPERTS = {"conv": "test_convnext", "mobile": "mobilenetv3_small_050", "small": "test_resnet"}
METHODS = ("average", "weighted", "greedy", "temperature", "logit-adjust", "cascade",
           "alt-average", "alt-weighted", "alt-cascade", "alt-logit-adjust",
           "on-expert-logit-adjust", "router", "top1-router", "conf-router",
           "conf-logit-adjust", "tau-norm-conv", "tau-norm-mobile", "tau-norm-small")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(artifacts root, dataset root): 3 experts (with features, for the router) and every
    combination."""
    base = tmp_path_factory.mktemp("classify")
    counts = pd.DataFrame({"species_name": [f"Species {i}" for i in range(3)],
                           "train": [16] * 3, "val": [20] * 3, "test": [12] * 3},
                          index=pd.Index(range(3), name="class_id"))
    data = generate_dataset(base / "data", counts, image_size=40)
    art = base / "art"
    for name, arch in EXPERTS.items():
        code, _, err = cli("--artifacts", art, "train", "--data", data, "--arch", arch,
                           "--expert", name, "--features", *TINY)
        assert code == 0, err
    code, _, err = cli("--artifacts", art, "combine", "--average", "--weighted", "--greedy",
                       "--temperature", "--logit-adjust", "auto", "--cascade", "--router",
                       "--quiet")
    assert code == 0, err
    # The other forms: logits space, accuracy weights (uncalibrated), a budget cascade, logit
    # adjustment of a cascade and of an expert, a top-1 router, a router on confidences and
    # logit adjustment of it; every expert's tau-normalised classifier.
    for extra in (["--average", "--space", "logits", "--weighted", "--weight-by", "accuracy",
                   "--cascade", "--budget", "0.004", "--logit-adjust", "0.5", "--adjust-on",
                   "cascade", "--prefix", "alt"],
                  ["--logit-adjust", "1", "--adjust-on", "small", "--prefix", "on-expert"],
                  ["--router", "--top-k", "1", "--prefix", "top1"],
                  ["--router", "--router-input", "confidences", "--logit-adjust", "0.5",
                   "--adjust-on", "router", "--prefix", "conf"],
                  ["--tau-norm", "conv", "--tau-norm", "mobile", "--tau-norm", "small",
                   "--target", "macro"]):
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
    # A router combined by the plantkit before routers could run says why it cannot.
    old = tmp_path / "old"
    shutil.copytree(art / "combos" / "router", old / "combos" / "router")
    shutil.copytree(art / "experts", old / "experts")
    (old / "combos" / "router" / "runnable.json").write_text(json.dumps({
        "format": "plantkit-runnable-combination", "version": 1, "method": "router",
        "runnable": False,
        "reason": "router combinations cannot be applied to new images yet (issue 12)"}))
    line = refused("--artifacts", old, "classify", data / "images" / "test", "--with", "router")
    assert "saved by an older plantkit" in line and "plantkit combine --router" in line


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
    gateless = tmp_path / "gateless"
    shutil.copytree(art / "combos", gateless / "combos")
    shutil.copytree(art / "experts", gateless / "experts")
    (gateless / "combos" / "router" / "router-gate-1.keras").unlink()
    cases = [
        [*base, str(tmp_path / "nowhere"), "--with", "average"],
        [*base, images, "--with", "nothing-of-that-name"],
        [*base, images, "--with", "average", "--top", "0"],
        [*base, images, "--with", "average", "--csv", str(tmp_path)],
        ["--artifacts", str(gateless), "classify", images, "--with", "router"],
        [*base, images, "--with", "average", "--batch-size", "0"],
    ]
    results = refusals(cases)
    for case, result in zip(cases, results):
        assert result["code"] == 2 and len(result["lines"]) == 1, (case, result)
        assert result["heavy"] == [], (case, result)
    lines = [r["lines"][0] for r in results]
    assert "does not exist" in lines[0] and "nothing-of-that-name" in lines[1]
    assert "--top" in lines[2] and "--csv" in lines[3]
    assert "router router lacks router-gate-1.keras" in lines[4]


def test_top1_router_runs_one_chosen_expert_beside_its_input_expert(trained):
    art, data = trained
    result = classified(art, data / "images" / "test", "--with", "top1-router")
    document = json.loads((art / "combos" / "top1-router" / "combination.json").read_text())
    params = document["params"]
    names = list(params["share"]["test"])
    input_expert = params["input_expert"]
    chosen = []
    for image in result["images"]:
        ran = image["experts"]
        # The input expert always runs (its features feed the router), then only the one
        # expert the router keeps for this image, when it is another one.
        assert ran[0] == input_expert and len(ran) <= 2, ran
        chosen.append(ran[-1])
    share = [chosen.count(name) / len(chosen) for name in names]
    np.testing.assert_allclose(share, list(params["share"]["test"].values()))
    runs = result["cost"]["expert_images"]
    assert runs[input_expert] == 36
    assert sum(runs.values()) == sum(len(image["experts"]) for image in result["images"])
    assert min(runs.values()) < 36  # not every expert ran on every image: not dense


def test_a_copied_combination_classifies_the_same(trained, tmp_path):
    """A combination folder and its experts, copied to another artifacts root (as to another
    machine), give the same probabilities: nothing in them names the original root."""
    art, data = trained
    for name in ("top1-router", "conf-logit-adjust", "cascade"):
        copy = tmp_path / name
        shutil.copytree(art / "combos" / name, copy / "combos" / name)
        shutil.copytree(art / "experts", copy / "experts")
        here = classified(art, data / "images" / "test" / "2", "--with", name)
        there = classified(copy, data / "images" / "test" / "2", "--with", name)
        assert [i["top"] for i in there["images"]] == [i["top"] for i in here["images"]]
        assert [i["experts"] for i in there["images"]] == [i["experts"] for i in here["images"]]


def test_the_measured_cost_reaches_the_report_until_the_model_changes(trained, tmp_path):
    art, data = trained
    copy = tmp_path / "art"
    shutil.copytree(art / "combos" / "top1-router", copy / "combos" / "top1-router")
    shutil.copytree(art / "experts", copy / "experts")
    for record in copy.rglob("measured_cost.json"):  # other tests classify with the experts
        record.unlink()
    result = classified(copy, data / "images" / "test", "--with", "top1-router")
    code, out, err = cli("--artifacts", copy, "report", "--json", "--split", "test")
    assert code == 0, err
    report = json.loads(out)
    rows = {r["name"]: r for r in report["splits"]["test"]["leaderboard"]}
    measured = result["cost"]["measured_gflops_per_image"]
    assert rows["top1-router"]["measured_gflops"] == pytest.approx(measured)
    assert rows["top1-router"]["gflops"] == pytest.approx(measured)  # expected, on test
    assert rows["small"]["measured_gflops"] is None  # never classified with
    code, out, _ = cli("--artifacts", copy, "report", "--split", "test")
    assert code == 0 and "meas." in out
    # Refitting rewrites runnable.json: the old measurement no longer describes the model.
    runnable = copy / "combos" / "top1-router" / "runnable.json"
    runnable.write_text(runnable.read_text().replace('"top_k": 1', '"top_k": 2'))
    code, out, err = cli("--artifacts", copy, "report", "--json", "--split", "test")
    rows = {r["name"]: r for r in json.loads(out)["splits"]["test"]["leaderboard"]}
    assert rows["top1-router"]["measured_gflops"] is None


def test_a_model_folder_that_cannot_take_the_record_still_classifies(trained, tmp_path):
    art, data = trained
    copy = tmp_path / "art"
    shutil.copytree(art / "experts", copy / "experts")
    for record in copy.rglob("measured_cost.json"):  # other tests classify with the experts
        record.unlink()
    # A folder where the record goes: writing it fails as on a read-only or full disk (an
    # OSError), even for root.
    (copy / "experts" / "small" / "measured_cost.json").mkdir()
    code, out, err = cli("--artifacts", copy, "classify", data / "images" / "test" / "0",
                         "--with", "small", "--workers", "0", "--json")
    assert code == 0, err
    assert len(json.loads(out)["images"]) == 12
    assert "warning: the measured cost was not recorded" in err


def test_a_gate_that_would_run_code_is_refused_in_safe_mode(trained, tmp_path):
    """runnable files are data: a router gate replaced by a Keras model with a Lambda layer
    (arbitrary Python, deserialised only outside safe mode) is refused, not run."""
    from plantkit.backend import keras

    art, data = trained
    copy = tmp_path / "art"
    shutil.copytree(art / "combos" / "router", copy / "combos" / "router")
    shutil.copytree(art / "experts", copy / "experts")
    gate = copy / "combos" / "router" / "router-gate-0.keras"
    original = keras.saving.load_model(gate, compile=False)
    inputs = keras.Input(original.input_shape[1:])
    outputs = keras.layers.Lambda(lambda x: x * 0.0)(original(inputs))
    keras.Model(inputs, outputs).save(gate)
    line = refused("--artifacts", copy, "classify", data / "images" / "test" / "0", "--with",
                   "router")
    assert "router-gate-0.keras is not a loadable Keras gate" in line
    assert "Lambda" in line


@pytest.mark.parametrize(("name", "edit", "says"), [
    ("router", lambda d: d["output"].update(input_expert=99), "output.input_expert"),
    ("router", lambda d: d["output"].pop("top_k"), "no output.top_k"),
    ("router", lambda d: d["output"].update(top_k=True), "output.top_k is bool"),
    ("router", lambda d: d.update(temperatures=[1.0]), "temperatures"),
    ("router", lambda d: d.update(order=[0, 0, 1]), "order: not every expert once"),
    ("cascade", lambda d: d["output"].update(thresholds=[0.5]), "output.thresholds"),
    ("logit-adjust", lambda d: d["output"].update(prior="nope"), "no array 'nope'"),
    ("average", lambda d: d["output"].update(weights=[0, 0, 0]), "not all 0"),
    ("average", lambda d: d["output"].update(mix="magic"), "unknown node 'magic'"),
    ("tau-norm-small", lambda d: d["output"].update(weight="nope"), "no array 'nope'"),
    ("tau-norm-small", lambda d: d["output"].update(tau=-1), "output.tau -1"),
])
def test_a_damaged_runnable_document_is_refused_before_torch(trained, tmp_path, name, edit,
                                                            says):
    art, data = trained
    copy = tmp_path / "art"
    shutil.copytree(art / "combos" / name, copy / "combos" / name)
    shutil.copytree(art / "experts", copy / "experts")
    path = copy / "combos" / name / "runnable.json"
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))
    [result] = refusals([["--artifacts", str(copy), "classify", str(data / "images" / "test"),
                          "--with", name]])
    assert result["code"] == 2 and len(result["lines"]) == 1, result
    assert result["heavy"] == [], result
    assert "runnable.json is damaged" in result["lines"][0] and says in result["lines"][0]


# --- tau-normalisation: the stored features and classifier, the runnable node ---------------


@pytest.mark.parametrize("name", list(EXPERTS))
def test_stored_features_and_classifier_give_the_stored_logits(trained, name):
    """features @ W.T + b is the stored logits up to the float16 rounding of the features
    (|f16 - f| <= 2^-11 |f|): the pair tau-normalisation rescales is the expert's own."""
    art, _ = trained
    with open_store(art / "experts" / name / "predictions.h5") as store:
        classifier = store.classifier()
        assert classifier is not None and classifier.module
        for split in ("val", "test"):
            features, logits = store.features(split), store.logits(split)
            assert store.logits_dtype(split) == "float32"
            weight, bias = classifier.weight, classifier.bias
            error = np.abs(features @ weight.T + bias - logits)
            bound = 2.0 ** -10 * (np.abs(features) @ np.abs(weight).T) + 1e-5
            assert np.all(error <= bound), (split, float((error - bound).max()))
            # The bound is tight enough to tell: the rows in another class order fail it.
            swapped = np.abs(features @ weight[::-1].T + bias[::-1] - logits)
            assert not np.all(swapped <= bound)


def test_the_classifier_is_stored_only_when_it_turns_features_into_logits(trained):
    import torch

    from plantkit.models.expert import load_expert
    from plantkit.predict import linear_classifier, reproduces_logits

    art, _ = trained
    expert = load_expert(art / "experts" / "small")
    classifier = linear_classifier(expert)
    with open_store(art / "experts" / "small" / "predictions.h5") as store:
        stored = store.classifier()
    assert classifier is not None and stored is not None
    assert classifier.module == expert.classifier_name == stored.module
    np.testing.assert_array_equal(classifier.weight, stored.weight)
    images = torch.rand(4, 3, 32, 32)
    logits, features = expert.predict_batch(images, features=True)
    assert reproduces_logits(classifier, logits, features)
    # A head that does more than its Linear (here: a shifted output) is not stored ...
    assert not reproduces_logits(classifier, logits + 1.0, features)
    # ... and one that is no Linear is not even tried.
    expert.backbone.fc = torch.nn.Sequential(expert.backbone.fc)
    assert linear_classifier(expert) is None


def test_a_tau_norm_combination_runs_the_expert_s_features_on_its_stored_classifier(trained):
    art, _ = trained
    folder = art / "combos" / "tau-norm-small"
    runnable = json.loads((folder / "runnable.json").read_text())
    params = json.loads((folder / "combination.json").read_text())["params"]
    m = [e["name"] for e in runnable["experts"]].index("small")
    assert runnable["runs"] == [m]
    assert runnable["output"] == {"mix": "tau-norm", "expert": m, "tau": params["tau"],
                                  "weight": "classifier_weight", "input_dtype": "float16"}
    with np.load(folder / "runnable.npz") as arrays, \
            open_store(art / "experts" / "small" / "predictions.h5") as store:
        np.testing.assert_array_equal(arrays["classifier_weight"], store.classifier().weight)


def test_tau_norm_of_an_expert_predicted_without_features_says_predict_again(trained,
                                                                            tmp_path):
    art, _ = trained
    copy = tmp_path / "art"
    shutil.copytree(art / "experts", copy / "experts")
    code, _, err = cli("--artifacts", copy, "predict", "--expert", "small", "--workers", "0",
                       "--quiet")
    assert code == 0, err
    line = refused("--artifacts", copy, "combine", "--tau-norm", "small", "--quiet")
    assert "holds no features for split 'val'" in line
    assert "predict again with `plantkit predict --expert small --features`" in line
    # Doing what it says: plantkit predict stores the features and the classifier again.
    code, _, err = cli("--artifacts", copy, "predict", "--expert", "small", "--features",
                       "--workers", "0", "--quiet")
    assert code == 0, err
    code, _, err = cli("--artifacts", copy, "combine", "--tau-norm", "small", "--quiet")
    assert code == 0, err
    assert (copy / "combos" / "tau-norm-small" / "runnable.json").is_file()
