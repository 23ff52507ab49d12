"""The run folder ARTIFACTS/experts/<name>/ of a training: what may be resumed, overwritten
or must be protected, and the record of the run's options and dataset (train_config.json).

The keras-free half of these rules (which folder, whether it is protected) is in
plantkit.training.config, which `plantkit train` runs before any heavy import; this module
adds what needs the resume point itself (plantkit.training.resume reads and checks it).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from plantkit.artifacts import (
    CHECKPOINTS_DIR,
    TRAIN_CONFIG_FILE,
    discard,
    read_train_config,
    write_text,
)
from plantkit.errors import PlantkitInputError
from plantkit.training import config as options
from plantkit.training import resume
from plantkit.training.config import (
    DERIVED_WHEN_UNSET,
    RESUMABLE_CHANGES,
    TrainConfig,
    option_of,
    validate,
)


def check_run_dir(run_dir: Path, config: TrainConfig) -> Path | None:
    """The checkpoints folder to resume from, or None for a fresh run; refuses to clobber."""
    return options.check_run_dir(
        run_dir, config,
        has_resume_point=lambda checkpoints: resume.read_state(checkpoints) is not None,
    )


def discard_if_no_epoch(run_dir: Path) -> None:
    """After a failed fresh run: remove its folder unless an epoch was committed (then it is
    resumable). Errors here must not hide the failure being reported."""
    with contextlib.suppress(Exception):
        if resume.read_state(run_dir / CHECKPOINTS_DIR) is None:
            discard(run_dir)


def resumed_config(run_dir: Path, requested: TrainConfig, given: set[str] | None) -> TrainConfig:
    """The interrupted run's options, with the resumable changes of `requested`; refuses any
    other option of `given` (None: every option) that differs from the interrupted run's."""
    previous = TrainConfig.from_dict(_recorded(run_dir)["config"]).to_dict()
    requested_values = requested.to_dict()
    compared = set(requested_values) if given is None else set(given)
    for name in sorted(compared - RESUMABLE_CHANGES):
        if name in DERIVED_WHEN_UNSET and requested_values.get(name) is None:
            continue
        if name in requested_values and requested_values[name] != previous.get(name):
            raise PlantkitInputError(
                f"--resume: {option_of(name)} {requested_values[name]} differs from "
                f"the interrupted run's {previous.get(name)}; drop it, or train a new "
                "expert with --expert"
            )
    changes = {name: requested_values[name] for name in RESUMABLE_CHANGES
               if given is None or name in given or name in ("resume", "overwrite")}
    return validate(TrainConfig.from_dict({**previous, **changes}))


def _recorded(run_dir: Path) -> dict:
    """The interrupted or finished run's train_config.json (its absence is refused)."""
    document = read_train_config(run_dir, required=True)
    assert document is not None  # required: read or refused
    return document


def write_train_config(run_dir: Path, config: TrainConfig, dataset) -> None:
    """train_config.json: the options and the dataset (root, fingerprint, class ids, carve)."""
    carve = None
    if dataset.val_from_train is not None:
        carve = {"fraction": dataset.val_from_train, "seed": dataset.val_seed}
    document = {
        "config": config.to_dict(),
        "dataset": {
            "root": str(dataset.root),
            "fingerprint": dataset.fingerprint,
            "class_ids": list(dataset.class_ids),
            # Open the root with open_dataset(root, val_from_train=fraction, seed=seed) to
            # get the same splits (None: the dataset's own val folder).
            "val_from_train": carve,
        },
    }
    write_text(run_dir / TRAIN_CONFIG_FILE, json.dumps(document, indent=2) + "\n")


def check_same_dataset(run_dir: Path, dataset) -> None:
    """--resume: refuse a dataset other than the one the run was trained on."""
    recorded = _recorded(run_dir)["dataset"]
    if recorded["fingerprint"] != dataset.fingerprint:
        raise PlantkitInputError(
            f"--resume: the dataset at {dataset.root} (fingerprint {dataset.fingerprint}) is "
            f"not the one the run was trained on ({recorded['root']}, fingerprint "
            f"{recorded['fingerprint']}); pass --data with that dataset"
        )
