"""The artifacts root: its folders, every file name in them, name rules, one JSON reader.

Every module that reads or writes an artifact asks this module where it lives; docs/artifacts.md
describes each file. Nothing here imports torch or keras.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

from plantkit.errors import PlantkitInputError

ARTIFACTS_ENV = "PLANTKIT_ARTIFACTS"

# Folders of the artifacts root.
EXPERTS_DIR = "experts"
COMBOS_DIR = "combos"
DATA_DIR = "data"
REPORTS_DIR = "reports"
CACHE_DIR = "cache"  # decoded image caches (plantkit.data.cache)
KIND_FOLDERS = {"expert": EXPERTS_DIR, "combination": COMBOS_DIR}

# An expert folder (experts/<name>/).
EXPERT_FILE = "expert.json"
WEIGHTS_FILE = "weights.pt"
STORE_FILE = "predictions.h5"
TRAIN_CONFIG_FILE = "train_config.json"
HISTORY_FILE = "history.csv"
CHECKPOINTS_DIR = "checkpoints"
# checkpoints/: one folder per kept epoch and the record that names the current ones.
CHECKPOINT_STATE_FILE = "state.json"
CHECKPOINT_WEIGHTS_FILE = "state.weights.h5"  # Keras weights: model and optimizer variables
EPOCH_DIR_PREFIX = "epoch-"

# A combination folder (combos/<name>/).
COMBINATION_FILE = "combination.json"
# ... and the combination as a model for `plantkit classify` (plantkit.combine.apply).
RUNNABLE_FILE = "runnable.json"
RUNNABLE_ARRAYS_FILE = "runnable.npz"
# ... a router's gate per fold (Keras native format, loaded with safe_mode=True).
ROUTER_GATE_FILE = "router-gate-{fold}.keras"
# An expert or combination folder: the cost `plantkit classify` last measured with it.
MEASURED_COST_FILE = "measured_cost.json"

# A generated dataset folder (data/<name>/) carries this beside images/.
SYNTH_FILE = "synth.json"

# One row per epoch of history.csv, in this order.
HISTORY_COLUMNS = (
    "epoch", "loss", "top1", "top5", "macro_top1",
    "val_loss", "val_top1", "val_top5", "val_macro_top1",
    "lr", "seconds", "images_per_s", "corrupt_images",
)
# Wall-clock columns: they differ between two runs of the same training.
HISTORY_TIMING_COLUMNS = ("seconds", "images_per_s")

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME_MAX = 128


def check_name(name: object, what: str = "name") -> str:
    """An artifact or split name: letters, digits, '.', '_' and '-', starting with a letter or
    digit; so it never names a hidden leftover, a path separator or '..'."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or len(name) > _NAME_MAX:
        raise PlantkitInputError(
            f"{what} {name!r} is not usable: use letters, digits, '.', '_' and '-' only "
            f"(starting with a letter or digit, at most {_NAME_MAX} characters)"
        )
    return name


def artifacts_root(explicit: str | os.PathLike | None = None) -> Path:
    """The output root: `explicit`, else $PLANTKIT_ARTIFACTS, else ./artifacts."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ARTIFACTS_ENV)
    return Path(env) if env else Path.cwd() / "artifacts"


def kind_folder(kind: str) -> str:
    try:
        return KIND_FOLDERS[kind]
    except KeyError:
        raise PlantkitInputError(
            f"artifact kind {kind!r} is unknown: use one of {', '.join(KIND_FOLDERS)}"
        ) from None


def artifact_dir(root: str | os.PathLike, name: str, kind: str = "expert") -> Path:
    """The folder of expert or combination `name` under the artifacts root."""
    return Path(root) / kind_folder(kind) / check_name(name, f"{kind} name")


def expert_dir(root: str | os.PathLike, name: str) -> Path:
    return artifact_dir(root, name, "expert")


def combo_dir(root: str | os.PathLike, name: str) -> Path:
    return artifact_dir(root, name, "combination")


def store_path(root: str | os.PathLike, name: str, kind: str = "expert") -> Path:
    """Where the prediction store of expert or combination `name` lives."""
    return artifact_dir(root, name, kind) / STORE_FILE


def data_dir(root: str | os.PathLike) -> Path:
    return Path(root) / DATA_DIR


def reports_dir(root: str | os.PathLike) -> Path:
    return Path(root) / REPORTS_DIR


def is_visible(path: Path) -> bool:
    """False for the hidden names of the write protocol (temporaries, leftovers, locks)."""
    return not path.name.startswith(".")


def list_artifacts(root: str | os.PathLike, kind: str) -> list[Path]:
    """The artifact folders of `kind` (expert or combination), sorted by name.

    Hidden leftovers of killed writers and folders whose names are not artifact names are
    never listed.
    """
    folder = Path(root) / kind_folder(kind)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if is_visible(p) and _NAME_PATTERN.match(p.name) and p.is_dir())


def find_stores(root: str | os.PathLike, kind: str | None = None) -> list[Path]:
    """Store files of the listed artifacts, sorted by kind then name."""
    kinds = list(KIND_FOLDERS) if kind is None else [kind]
    return [d / STORE_FILE for each in kinds for d in list_artifacts(root, each)
            if (d / STORE_FILE).is_file()]


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """A JSON object from `path`; anything else is a PlantkitInputError naming the file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlantkitInputError(f"{path} does not exist ({what})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlantkitInputError(f"cannot read {path} ({what}): {exc}") from exc
    if not isinstance(document, dict):
        raise PlantkitInputError(f"{path} is not a JSON object ({what})")
    return document


def read_train_config(folder: str | os.PathLike, *, required: bool = False) -> dict | None:
    """The train_config.json `plantkit train` leaves in an expert folder: None when there is
    none (an imported expert), unless `required` (then its absence is refused)."""
    path = Path(folder) / TRAIN_CONFIG_FILE
    if not required and not path.is_file():
        return None
    return read_json(path, "the training's options")


def read_history_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a history.csv as text cells ([] when there is no file)."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PlantkitInputError(f"{path} is not a readable history CSV ({exc})") from exc


def history_csv_text(rows: list[dict]) -> str:
    """history.csv's content: HISTORY_COLUMNS as header, one line per row."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """An output file the user named (`--html FILE`): refused up front when a folder stands
    there or a file stands where one of its folders should be, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise PlantkitInputError(
            f"{option} {path} is a folder: give a file path (e.g. {path / 'report.html'})"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PlantkitInputError(
                    f"{option} {path}: {parent} is a file, not a folder; choose another path"
                )
            break
    return path
