"""Where plantkit writes its artifacts."""

from __future__ import annotations

import os
from pathlib import Path

ARTIFACTS_ENV = "PLANTKIT_ARTIFACTS"


def artifacts_root(explicit: str | os.PathLike | None = None) -> Path:
    """The output root: `explicit`, else $PLANTKIT_ARTIFACTS, else ./artifacts."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ARTIFACTS_ENV)
    return Path(env) if env else Path.cwd() / "artifacts"
