"""plantkit: train, evaluate and combine image classifiers on long-tailed plant data."""

import os
import sys

__version__ = "0.1.0"

# Keras picks its backend once, at its first import; every plantkit model wraps torch
# modules, so the backend must be torch before anything imports keras.
if "keras" in sys.modules:
    _backend = sys.modules["keras"].backend.backend()
    if _backend != "torch":
        raise ImportError(
            f"keras was imported with the '{_backend}' backend before plantkit; plantkit needs "
            "the torch backend: import plantkit first, or set KERAS_BACKEND=torch."
        )
os.environ["KERAS_BACKEND"] = "torch"
