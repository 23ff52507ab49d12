"""plantkit: train, evaluate and combine image classifiers on long-tailed plant data.

Importing plantkit imports nothing heavy and sets nothing (no KERAS_BACKEND: that is
plantkit.backend's, imported by the modules that need keras). The entry points of the
library are exported lazily, each imported from its home module on first use:

    import plantkit
    dataset = plantkit.open_dataset("plantnet_300K")
    result = plantkit.train_expert(plantkit.TrainConfig(data="plantnet_300K"))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it (a move of a name is a change of one line here).
_EXPORTS = {
    "open_dataset": "plantkit.data.layout",
    "TrainConfig": "plantkit.training.config",
    "train_expert": "plantkit.training.fit",
    "TrainResult": "plantkit.training.result",
    "TrainingDiverged": "plantkit.training.fit",
    "predict_expert": "plantkit.predict",
    "open_store": "plantkit.store",
    "evaluate_store": "plantkit.metrics",
    "build_report": "plantkit.report.leaderboard",
    "CombineOptions": "plantkit.combine.options",
    "run_combine": "plantkit.combine.run",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    home = _EXPORTS.get(name)
    if home is None:
        raise AttributeError(f"module 'plantkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
