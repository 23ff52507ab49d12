"""`plantkit demo --quick`: the whole workflow end to end, every artifact checked."""

from __future__ import annotations

import json

import h5py
import pytest
from typer.testing import CliRunner

from plantkit.commands.main import app
from plantkit.demo import STAGES, DemoPlan


@pytest.mark.slow
def test_quick_demo_writes_every_artifact_and_skips_finished_stages(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload["ran"]) == list(STAGES)

    assert (out / "data" / "embedded" / "images" / "train").is_dir()
    plan = DemoPlan.make(quick=True)
    for expert in plan.experts:
        folder = out / "experts" / expert.name
        assert (folder / "expert.json").is_file() and (folder / "history.csv").is_file()
        with h5py.File(folder / "predictions.h5") as store:
            assert {"val", "test"} <= set(store["splits"])
            assert "features" in store["splits"]["val"]  # the router's input
    combos = {p.name for p in (out / "combos").iterdir()}
    assert {"average", "weighted", "greedy", "temperature", "logit-adjust", "cascade",
            "router", "top1-router"} <= combos
    for name in combos:
        assert (out / "combos" / name / "combination.json").is_file()

    report = json.loads((out / "reports" / "report.json").read_text())
    names = {m["name"] for m in report["models"]}
    assert names == combos | {e.name for e in plan.experts}
    page = (out / "reports" / "report.html").read_text(encoding="utf-8")
    assert "plotly" in page.lower() and "top1-router" in page
    assert (out / "reports" / "eda.html").is_file()
    # Honest verdicts: one line per combination, against the best expert.
    assert len(payload["verdicts"]) == len(combos)
    assert all("the best expert" in line for line in payload["verdicts"])

    again = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--json"])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["ran"] == {}  # everything was finished: nothing reran
    quiet = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "-q"])
    assert quiet.exit_code == 0 and quiet.stdout == ""  # --quiet: no tables
