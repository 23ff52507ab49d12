"""Read weights files (plantkit, Pl@ntNet-300K, timm, torchvision) and load them into a backbone.

Every mismatch (another architecture, another number of classes, an unreadable file) is
a PlantkitInputError naming the file, never a torch traceback.
"""

from __future__ import annotations

import io
import pickle
import re
from os import PathLike
from pathlib import Path

import torch

from plantkit.artifacts import read_verified
from plantkit.errors import PlantkitInputError

# Where the weights sit inside the dicts various training scripts torch.save.
_STATE_KEYS = ("model", "state_dict", "model_state_dict")


def read_checkpoint(path: str | PathLike, *, sha256: str | None = None,
                    fix: str = "") -> tuple[dict[str, torch.Tensor], dict]:
    """The weights in `path` and the checkpoint's other plain entries (``epoch`` ...).

    Accepts a bare state_dict, a dict holding one under ``model`` (Pl@ntNet-300K) or
    ``state_dict``, or a .safetensors file; a ``module.`` prefix (DataParallel) is removed.
    Only tensors and plain containers are unpickled (``weights_only``), never code.
    `sha256`, when given, is the checksum recorded when the file was written: other bytes
    are refused (`fix` says what to do).
    """
    path = Path(path)
    if not path.is_file():
        raise PlantkitInputError(f"checkpoint {path} does not exist")
    source: Path | io.BytesIO = path
    if sha256 is not None:
        source = io.BytesIO(read_verified(path, sha256, fix=fix or "replace the file"))
    content: object  # a state_dict, a checkpoint dict holding one, or anything torch.save wrote
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load, load_file

            content = (load(source.getvalue()) if isinstance(source, io.BytesIO)
                       else load_file(str(path)))
        else:
            content = torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a page of advice on weights_only; keep the actual reason.
        found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(exc))
        reason = found.group(1).strip().rstrip(".") if found else type(exc).__name__
        raise PlantkitInputError(
            f"cannot read {path}: not a torch.save file of tensors and plain values ({reason}); "
            "if you trust it, re-save just its weights with torch.save(ckpt['model'], FILE)"
        ) from exc
    except Exception as exc:  # noqa: BLE001 - unpickling garbage fails in arbitrary ways
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PlantkitInputError(
            f"cannot read {path} as a torch checkpoint ({type(exc).__name__}: {reason}); "
            "is it a file written by torch.save?"
        ) from exc
    if not isinstance(content, dict):
        raise PlantkitInputError(
            f"{path} holds a {type(content).__name__}, not a checkpoint dict or state_dict"
        )
    extras: dict = {}
    state = content
    for key in _STATE_KEYS:
        if isinstance(content.get(key), dict):
            state = content[key]
            extras = {k: v for k, v in content.items() if isinstance(v, (int, float, str))}
            break
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PlantkitInputError(
            f"{path} holds no weights: expected a state_dict, or a dict with one under "
            f"{' or '.join(repr(k) for k in _STATE_KEYS[:2])} (as Pl@ntNet-300K saves them)"
        )
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return dict(state), extras


def load_backbone_state(
    backbone: torch.nn.Module,
    state: dict[str, torch.Tensor],
    *,
    classifier: str,
    num_classes: int,
    origin: str,
    new_head: bool = False,
) -> None:
    """Copy `state` into `backbone` after checking that it fits key for key.

    `classifier` is the qualified name of the backbone's last layer. With `new_head`, a
    classifier for another number of classes (ImageNet's 1,000) is left out and the
    backbone keeps its freshly initialised one; without it, that is an error. `origin`
    names the file in messages.
    """
    head_keys = {f"{classifier}.weight", f"{classifier}.bias"}
    head = state.get(f"{classifier}.weight")
    if head is not None and head.shape[0] != num_classes:
        if not new_head:
            raise PlantkitInputError(
                f"{origin} has {head.shape[0]:,} classes ({classifier}.weight is "
                f"{' x '.join(map(str, head.shape))}) but the expert has {num_classes:,}; "
                "use a checkpoint for the same classes or set the number of classes to match"
            )
        state = {k: v for k, v in state.items() if k not in head_keys}

    own = backbone.state_dict()
    # Checkpoints from torch < 0.4.1 have no BatchNorm step counters; eval never uses them.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if new_head:
        missing = [k for k in missing if k not in head_keys]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or reshaped:
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected),
                            ("with another shape", reshaped)):
            if keys:
                problems.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:2])})")
        raise PlantkitInputError(
            f"{origin} does not fit this architecture: keys {'; '.join(problems)}; "
            "check --arch (and --source)"
        )
    backbone.load_state_dict(state, strict=False)
