"""Keras on the torch backend: the one door through which plantkit imports keras.

Keras picks its backend once, at its first import, and every plantkit model wraps torch
modules. So a module of plantkit that needs keras never writes `import keras`; it writes

    from plantkit.backend import keras

(and `ops = keras.ops` where it needs the ops): the import that gives it keras is the one
that selects the backend, so no import ordering (isort's, ruff's) can put keras first.

Importing this module sets KERAS_BACKEND=torch when keras is not imported yet, and refuses
(ImportError, naming the fix) a keras already imported with another backend. Nothing else in
plantkit touches the environment: `import plantkit`, reading stores and computing metrics
leave keras, torch and KERAS_BACKEND alone.
"""

from __future__ import annotations

import os
import sys

BACKEND = "torch"


def _refuse(backend: str) -> ImportError:
    return ImportError(
        f"keras was imported with the '{backend}' backend before plantkit's models; plantkit "
        f"needs the {BACKEND} backend: set KERAS_BACKEND={BACKEND} before keras is first "
        "imported, or import plantkit's training or model modules (or plantkit.backend) "
        "before keras"
    )


def _keras_on_torch():
    loaded = sys.modules.get("keras")
    if loaded is not None:
        backend = loaded.backend.backend()
        if backend != BACKEND:
            raise _refuse(backend)
        return loaded
    os.environ["KERAS_BACKEND"] = BACKEND
    # Here, not at the top of the module: the environment must be set first.
    import keras

    if keras.backend.backend() != BACKEND:  # pragma: no cover - keras ignored the variable
        raise _refuse(keras.backend.backend())
    return keras


keras = _keras_on_torch()

__all__ = ["BACKEND", "keras"]
