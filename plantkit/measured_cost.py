"""The cost `plantkit classify` measured with a model, kept beside it for `plantkit report`.

ARTIFACTS/{experts,combos}/<name>/measured_cost.json holds the last classification's measured
GFLOPs per image (from the experts that actually ran), images/s and wall time, and the
sha256 of the model's defining file (expert.json, or the combination's runnable.json) at
the time: a model retrained or refitted since makes the record stale, and the report then
ignores it. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from plantkit.artifacts import (
    EXPERT_FILE,
    MEASURED_COST_FILE,
    RUNNABLE_FILE,
    write_text,
)

MEASURED_FORMAT = "plantkit-measured-cost"
MEASURED_VERSION = 1
RECORDED_KEYS = ("images", "wall_s", "images_per_s", "measured_gflops_per_image",
                 "expected_gflops_per_image", "expert_images")


def _defining_file(folder: Path) -> Path:
    expert = folder / EXPERT_FILE
    return expert if expert.is_file() else folder / RUNNABLE_FILE


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def record_measured_cost(folder: str | Path, cost: dict) -> None:
    """Write `cost` (classify_images' "cost") beside the model in `folder`; an OSError
    (a read-only artifacts root, a full disk) is the caller's to report."""
    from plantkit import __version__

    folder = Path(folder)
    document = {
        "format": MEASURED_FORMAT, "version": MEASURED_VERSION,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "plantkit_version": __version__, "machine": platform.machine(),
        "model_sha256": _sha256(_defining_file(folder)),
        **{key: cost.get(key) for key in RECORDED_KEYS},
    }
    write_text(folder / MEASURED_COST_FILE, json.dumps(document, indent=2) + "\n")


def read_measured_cost(folder: str | Path) -> dict | None:
    """The record beside the model in `folder`, or None: none, unreadable, or stale (the
    model's defining file changed since it was measured)."""
    folder = Path(folder)
    try:
        document = json.loads((folder / MEASURED_COST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("format") != MEASURED_FORMAT:
        return None
    if document.get("model_sha256") != _sha256(_defining_file(folder)):
        return None
    return document
