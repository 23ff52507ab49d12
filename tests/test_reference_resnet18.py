"""Real reference: the released ResNet-18's published Pl@ntNet-300K test results, rebuilt.

From tests/data/plantnet300k_resnet18_test.csv (per species: test count and the released
model's test accuracy) we rebuild test labels and float16 logits with round(acc * n) rows
right per species, store them with `plantkit import logits`, and check that the metrics give
the published numbers: 77.9 % top-1, 31.7 % macro top-1, 93 species above 90 %.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from plantkit import metrics
from plantkit.store import open_store

REFERENCE_CSV = Path(__file__).parent / "data" / "plantnet300k_resnet18_test.csv"
EXPERT = "resnet18-released"


def reference_table() -> pd.DataFrame:
    return pd.read_csv(REFERENCE_CSV, dtype={"species_id": str})


def rebuilt_predictions(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels (count_test rows per class, in class order) and float16 logits: 10 on the predicted
    class, 0 elsewhere; round(acc * n) rows of each class predict it, the rest the next class."""
    counts = table["count_test"].to_numpy()
    num_classes = len(counts)
    right = np.round(table["resnet18_test_accuracy"].to_numpy() * counts).astype(np.int64)
    labels = np.repeat(np.arange(num_classes), counts)
    first_row = np.repeat(np.cumsum(counts) - counts, counts)
    is_right = (np.arange(len(labels)) - first_row) < np.repeat(right, counts)
    predicted = np.where(is_right, labels, (labels + 1) % num_classes)
    logits = np.zeros((len(labels), num_classes), dtype=np.float16)
    logits[np.arange(len(labels)), predicted] = 10
    return logits, labels


def import_logits_cli(artifacts: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(artifacts),
         "import", "logits", *args],
        capture_output=True, text=True,
    )


@pytest.fixture(scope="module")
def reference_artifacts(tmp_path_factory) -> Path:
    """An artifacts root holding experts/resnet18-released/predictions.h5 (test split only),
    imported through the CLI as a user would."""
    tmp = tmp_path_factory.mktemp("reference")
    table = reference_table()
    logits, labels = rebuilt_predictions(table)
    np.save(tmp / "L.npy", logits)
    np.save(tmp / "Y.npy", labels)
    (tmp / "CLASSES.txt").write_text("\n".join(table["species_id"]) + "\n")
    artifacts = tmp / "artifacts"
    result = import_logits_cli(
        artifacts, "--expert", EXPERT, "--split", "test", "--logits", str(tmp / "L.npy"),
        "--labels", str(tmp / "Y.npy"), "--classes", str(tmp / "CLASSES.txt"),
        "--dtype", "float16",
    )
    assert result.returncode == 0, result.stderr
    return artifacts


def reference_store_path(artifacts: Path) -> Path:
    return artifacts / "experts" / EXPERT / "predictions.h5"


# --- metrics half --------------------------------------------------------------------------


def test_metrics_reproduce_the_published_resnet18_numbers(reference_artifacts):
    table = reference_table()
    with open_store(reference_store_path(reference_artifacts)) as store:
        assert store.num_rows("test") == 31112 and store.logits_dtype("test") == "float16"
        result = metrics.evaluate_store(store, splits=("test",))
    test = result["splits"]["test"]
    assert round(test["top1"] * 100, 1) == 77.9
    assert round(test["macro_top1"] * 100, 1) == 31.7
    assert test["species_above_90"] == 93
    assert test["species_at_0"] == 524
    assert test["classes_present"] == 1081
    # Each species' accuracy is its published one, up to the rounding to whole test images.
    counts = table["count_test"].to_numpy()
    np.testing.assert_array_less(
        np.abs(np.array(test["per_class_accuracy"]) - table["resnet18_test_accuracy"]),
        0.5 / counts + 1e-9)
    # A miss scores its true class 0 like 1,079 other classes: ties earn no top-k credit.
    assert test["top10"] == test["top1"]
    # No val split: no average-k, with a note saying why; views are by test counts only.
    assert test["avg3"] is None and any("no val split" in n for n in result["notes"])
    assert result["count_basis"] == "test"


# --- `plantkit report` half ------------------------------------------------------------------


def report_cli(artifacts: Path, *args: str) -> subprocess.CompletedProcess:
    # A wide terminal keeps the leaderboard in one table (narrow ones split it in two).
    return subprocess.run(
        [sys.executable, "-m", "plantkit.commands.main", "--artifacts", str(artifacts),
         "report", *args],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "250"},
    )


def leaderboard_row(text: str, name: str) -> dict[str, str]:
    """The cells of `name`'s row in the printed leaderboard, keyed by the column headers."""
    lines = text.splitlines()
    header = next(line for line in lines if "┃ name" in line)
    row = next(line for line in lines if f"│ {name} " in line)
    keys = [cell.strip() for cell in header.split("┃")[1:-1]]
    values = [cell.strip() for cell in row.split("│")[1:-1]]
    return dict(zip(keys, values, strict=True))


def test_report_prints_the_published_resnet18_numbers(reference_artifacts):
    result = report_cli(reference_artifacts, "--split", "test", "--quiet")
    assert result.returncode == 0, result.stderr
    row = leaderboard_row(result.stdout, EXPERT)
    assert row["top-1"] == "77.9"
    assert row["macro top-1"] == "31.7"
    assert row["species > 90 %"] == "93"
    # no val split, no train counts, no GFLOPs: dashes and notes, not a crash
    assert row["avg-3 (set)"] == "-" and row["many"] == "-" and row["GFLOPs"] == "-"
    assert "no val split" in result.stdout


def test_report_json_holds_the_published_resnet18_numbers(reference_artifacts):
    result = report_cli(reference_artifacts, "--split", "test", "--json", "--worst", "3")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    row = payload["splits"]["test"]["leaderboard"][0]
    assert row["name"] == EXPERT
    assert round(100 * row["top1"], 1) == 77.9
    assert round(100 * row["macro_top1"], 1) == 31.7
    assert row["species_above_90"] == 93
    assert payload["models"][0]["results"]["test"]["species_at_0"] == 524
    assert payload["classes"]["names_from"] == "Pl@ntNet-300K table"
    assert [r["accuracy"] for r in payload["per_class_table"]["rows"]] == [0.0, 0.0, 0.0]
