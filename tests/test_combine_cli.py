"""`plantkit combine`: flags, the printed tables, --json, exit codes on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from combine_helpers import DEFAULT_SPECS, make_experts, split_labels, write_expert

from plantkit.artifacts import store_path
from plantkit.commands import main
from plantkit.store import open_store


def _cli(artifacts, *args):
    """The real command in a subprocess: exit code and the streams as a user sees them."""
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(artifacts),
         "combine", *args], capture_output=True, text=True)


def _run_here(capsys, monkeypatch, artifacts, *args):
    """The command in this process (no interpreter start): (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["plantkit", "--artifacts", str(artifacts), "combine",
                                      *args])
    with pytest.raises(SystemExit) as done:
        main.run()
    captured = capsys.readouterr()
    return done.value.code, captured.out, captured.err


def test_json_run_saves_every_method(tmp_path):
    make_experts(tmp_path, n_val=200, n_test=150)
    result = _cli(tmp_path, "--experts", "tiny,medium,large", "--average", "--weighted",
                  "--greedy", "--greedy-metric", "top1", "--cascade", "--budget", "5",
                  "--logit-adjust", "0.3", "--adjust-on", "weighted", "--prefix", "run1",
                  "--cost", "large=10", "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert [e["name"] for e in payload["experts"]] == ["tiny", "medium", "large"]
    assert payload["experts"][2]["gflops"] == 10.0
    combos = {c["method"]: c for c in payload["combinations"]}
    assert list(combos) == ["average", "weighted", "greedy", "cascade", "logit-adjust"]
    assert combos["cascade"]["expected_gflops_val"] <= 5.0 + 1e-9  # the budget binds on val
    assert combos["logit-adjust"]["params"]["base"] == "run1-weighted"
    assert combos["logit-adjust"]["params"]["tau"] == 0.3
    assert combos["logit-adjust"]["expected_gflops"] == combos["weighted"]["expected_gflops"]
    assert combos["greedy"]["params"]["metric"] == "top1"
    for combo in payload["combinations"]:
        folder = tmp_path / "combos" / combo["name"]
        assert combo["name"].startswith("run1-")
        document = json.loads((folder / "combination.json").read_text())
        assert document["method"] == combo["method"] and document["fitted_on"] == "val"
        assert document["val"] == combo["val"] and document["experts"] == combo["experts"]
        with open_store(folder) as store:
            assert store.kind == "combination" and store.splits == ["val", "test"]
            assert store.num_rows("test") == 150 and store.train_counts is not None
            probs = np.exp(store.logits("test"))
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert sorted(p.name for p in (tmp_path / "combos").iterdir()) == sorted(
        c["name"] for c in payload["combinations"])


def test_tables_show_results_and_method_outputs(tmp_path, capsys, monkeypatch):
    make_experts(tmp_path, DEFAULT_SPECS[:3], n_val=150, n_test=120)
    code, out, err = _run_here(capsys, monkeypatch, tmp_path, "--average", "--greedy",
                               "--temperature", "--logit-adjust", "auto", "--target", "macro",
                               "--cascade", "--within", "0.01", "--quiet")
    assert code == 0, err
    for text in ("Experts", "Combinations", "val top-1", "test macro", "GFLOPs",
                 "greedy: chose", "ECE before -> after", "val trade-off on average",
                 "val accuracy vs cost", "cascade: chosen (within 0.01", "saved average"):
        assert text in out, text
    with open_store(tmp_path / "combos" / "greedy") as store:
        multiset = store.attrs["experts"]
    assert all(name in out for name in multiset)


@pytest.mark.parametrize("case", ["one store", "mismatched datasets", "missing split", "nan"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, case):
    labels = split_labels(0, 40, 30)
    write_expert(tmp_path, DEFAULT_SPECS[0], labels, 0)
    expected = {"one store": "two or more expert stores",
                "mismatched datasets": "different datasets",
                "missing split": "has no 'test' split", "nan": "NaN or infinite logits"}[case]
    if case == "mismatched datasets":
        write_expert(tmp_path, DEFAULT_SPECS[1], labels, 0, fingerprint="other")
    elif case == "missing split":
        write_expert(tmp_path, DEFAULT_SPECS[1], labels, 0, splits=("val",))
    elif case == "nan":
        write_expert(tmp_path, DEFAULT_SPECS[1], labels, 0, dtype="float32")
        with h5py.File(store_path(tmp_path, "small"), "r+") as f:
            f["splits/test/logits"][29, 0] = np.nan
    code, out, err = _run_here(capsys, monkeypatch, tmp_path, "--average", "--weighted",
                               "--quiet")
    assert code == 2
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert out == ""
    assert not (tmp_path / "combos").exists()


def test_bad_option_exits_2_in_a_real_process(tmp_path):
    make_experts(tmp_path, DEFAULT_SPECS[:2], n_val=30, n_test=30)
    result = _cli(tmp_path, "--average", "--space", "both")
    assert result.returncode == 2
    assert "'--space': 'both' is not one of 'probs', 'logits'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "combos").exists()


def test_tau_norm_flags_and_refusals(tmp_path, capsys, monkeypatch):
    from combine_helpers import write_linear_expert

    rng = np.random.default_rng(0)
    labels = {s: rng.integers(0, 3, size=40) for s in ("val", "test")}
    features = {s: rng.normal(size=(40, 4)) for s in labels}
    weight = rng.normal(size=(3, 4)) * np.array([[3.0], [1.0], [0.3]])
    for name in ("a", "b"):
        write_linear_expert(tmp_path, name, labels, features, weight)
    code, out, err = _run_here(capsys, monkeypatch, tmp_path, "--tau-norm", "a", "--tau-norm",
                               "b", "--target", "macro", "--json", "--quiet")
    assert code == 0, err
    combos = json.loads(out)["combinations"]
    assert [c["name"] for c in combos] == ["tau-norm-a", "tau-norm-b"]
    assert combos[0]["params"]["target"] == "macro"
    for args, says in ((["--tau-norm", "c"], "--tau-norm c: no expert c among"),
                       (["--tau-norm", "average"], "average is a combination, not an expert"),
                       (["--experts", "b", "--tau-norm", "a"], "or add it to --experts")):
        code, out, err = _run_here(capsys, monkeypatch, tmp_path, *args, "--quiet")
        assert code == 2 and out == ""
        assert says in err and len(err.strip().splitlines()) == 1, err


def test_tau_norm_prints_its_val_curve(tmp_path, capsys, monkeypatch):
    from combine_helpers import write_linear_expert

    rng = np.random.default_rng(1)
    labels = {s: rng.integers(0, 3, size=40) for s in ("val", "test")}
    features = {s: rng.normal(size=(40, 4)) for s in labels}
    for name in ("a", "other"):
        write_linear_expert(tmp_path, name, labels, features,
                            rng.normal(size=(3, 4)) * np.array([[3.0], [1.0], [0.3]]))
    code, out, err = _run_here(capsys, monkeypatch, tmp_path, "--tau-norm", "a", "--quiet")
    assert code == 0, err
    saved = json.loads((tmp_path / "combos" / "tau-norm-a" / "combination.json").read_text())
    tau = saved["params"]["tau"]
    assert "tau-norm-a: tau-normalised classifier of a, bias dropped" in " ".join(out.split())
    # The expert it did not read is left out of the experts table, and counted.
    assert "other" not in out and "1 more expert(s) not read by these methods" in out
    starred = [line for line in out.splitlines() if " *" in line]
    assert len(starred) == 1 and starred[0].split()[1] == f"{tau:g}"
