"""Checks of a runnable.json read back from disk (torch-free): a file edited by hand, damaged
or written by another plantkit is refused in one line naming what is wrong, before any
expert is loaded, instead of failing halfway through the images.

The document's shape is plantkit.combine.apply's (its module docstring lists the nodes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from plantkit.choices import ROUTER_INPUTS
from plantkit.errors import PlantkitInputError

NUMBER = (int, float)
OPTIONAL_INT = (int, type(None))
# Per node kind, its keys and their types (bool is refused where a number is meant).
NODE_KEYS: dict[str, dict[str, tuple]] = {
    "probs": {"kind": (str,), "weights": (list,)},
    "logit-mean": {"experts": (list,)},
    "expert": {"expert": (int,)},
    "cascade": {"order": (list,), "thresholds": (list,)},
    "logit-adjust": {"tau": NUMBER, "prior": (str,), "base": (dict,)},
    "router": {"experts": (list,), "input": (str,), "input_expert": OPTIONAL_INT,
               "input_dtype": (str,), "top_k": OPTIONAL_INT, "folds": (int,)},
    "tau-norm": {"expert": (int,), "tau": NUMBER, "weight": (str,), "input_dtype": (str,)},
}
INPUT_DTYPES = ("float16", "float32")


class _Damaged(Exception):
    """What is wrong with the document (the message), turned into one refusal line."""


def check_runnable(document, arrays: Mapping, where: str) -> None:
    """Refuse (PlantkitInputError) a runnable document whose shape or values cannot be
    applied: `where` names the file in the message."""
    try:
        _check_document(document, arrays)
    except _Damaged as exc:
        raise PlantkitInputError(
            f"{where} is damaged ({exc}): rerun `plantkit combine` to rewrite it") from None


def _check_document(document, arrays: Mapping) -> None:
    if not isinstance(document, dict):
        raise _Damaged("not a JSON object")
    experts = _typed(document, "experts", (list,))
    if not experts or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                              for e in experts):
        raise _Damaged("experts: give a list of {name, weights_sha256, gflops}")
    count = len(experts)
    num_classes = _typed(document, "num_classes", (int,))
    if num_classes < 2:
        raise _Damaged(f"num_classes {num_classes}")
    _indices(_typed(document, "runs", (list,)), count, "runs")
    order = _typed(document, "order", (list,))
    if sorted(_indices(order, count, "order")) != list(range(count)):
        raise _Damaged("order: not every expert once")
    temperatures = _typed(document, "temperatures", (list,))
    if len(temperatures) != count or not all(_positive(t) for t in temperatures):
        raise _Damaged(f"temperatures: give {count} numbers > 0")
    output = _typed(document, "output", (dict,))
    _check_node(output, count, arrays, "output")
    _check_classes(output, arrays, num_classes, "output")


def _check_node(node: dict, count: int, arrays: Mapping, at: str) -> None:
    mix = node.get("mix")
    if mix not in NODE_KEYS:
        raise _Damaged(f"{at}: unknown node {mix!r}")
    for key, types in NODE_KEYS[mix].items():
        _typed(node, key, types, f"{at}.")
    NODE_CHECKS[mix](node, count, arrays, at)


def _check_probs(node: dict, count: int, arrays: Mapping, at: str) -> None:
    weights = node["weights"]
    if len(weights) != count or not all(_number(w) and w >= 0 for w in weights) \
            or not sum(weights):
        raise _Damaged(f"{at}.weights: give {count} numbers >= 0, not all 0")


def _check_experts(node: dict, count: int, arrays: Mapping, at: str) -> None:
    if not _indices(node["experts"], count, f"{at}.experts"):
        raise _Damaged(f"{at}.experts: none")


def _check_expert(node: dict, count: int, arrays: Mapping, at: str) -> None:
    _indices([node["expert"]], count, f"{at}.expert")


def _check_cascade(node: dict, count: int, arrays: Mapping, at: str) -> None:
    if not _indices(node["order"], count, f"{at}.order"):
        raise _Damaged(f"{at}.order: no stage")
    if len(node["thresholds"]) != len(node["order"]) or not all(
            t is None or _number(t) for t in node["thresholds"]):
        raise _Damaged(f"{at}.thresholds: one number or null per stage")


def _check_adjust(node: dict, count: int, arrays: Mapping, at: str) -> None:
    if node["prior"] not in arrays:
        raise _Damaged(f"{at}.prior: no array {node['prior']!r} in runnable.npz")
    _check_node(node["base"], count, arrays, f"{at}.base")


def _check_router(node: dict, count: int, arrays: Mapping, at: str) -> None:
    _check_experts(node, count, arrays, at)
    if node["input"] not in ROUTER_INPUTS:
        raise _Damaged(f"{at}.input {node['input']!r}")
    if node["input"] == "features" and node["input_expert"] is None:
        raise _Damaged(f"{at}.input_expert: a features router needs one")
    if node["input_expert"] is not None:
        _indices([node["input_expert"]], count, f"{at}.input_expert")
    if node["input_dtype"] not in INPUT_DTYPES:
        raise _Damaged(f"{at}.input_dtype {node['input_dtype']!r}")
    top_k = node["top_k"]
    if top_k is not None and not 1 <= top_k <= len(node["experts"]):
        raise _Damaged(f"{at}.top_k {top_k}")
    if node["folds"] < 1:
        raise _Damaged(f"{at}.folds {node['folds']}")


def _check_tau_norm(node: dict, count: int, arrays: Mapping, at: str) -> None:
    _indices([node["expert"]], count, f"{at}.expert")
    if not (_number(node["tau"]) and node["tau"] >= 0):
        raise _Damaged(f"{at}.tau {node['tau']!r}")
    weight = arrays.get(node["weight"])
    if weight is None:
        raise _Damaged(f"{at}.weight: no array {node['weight']!r} in runnable.npz")
    if weight.ndim != 2 or weight.dtype.kind != "f" or not np.isfinite(weight).all():
        raise _Damaged(f"{at}.weight: not a finite classes x features matrix")
    if node["input_dtype"] not in INPUT_DTYPES:
        raise _Damaged(f"{at}.input_dtype {node['input_dtype']!r}")


def _check_classes(node: dict, arrays: Mapping, num_classes: int, at: str) -> None:
    """A tau-norm classifier has num_classes rows (the nodes are checked already)."""
    if node["mix"] == "logit-adjust":
        _check_classes(node["base"], arrays, num_classes, f"{at}.base")
    elif node["mix"] == "tau-norm" and len(arrays[node["weight"]]) != num_classes:
        raise _Damaged(f"{at}.weight: not {num_classes} classes")


NODE_CHECKS = {"probs": _check_probs, "logit-mean": _check_experts, "expert": _check_expert,
               "cascade": _check_cascade, "logit-adjust": _check_adjust,
               "router": _check_router, "tau-norm": _check_tau_norm}


def _typed(document: dict, key: str, types: tuple, at: str = ""):
    if key not in document:
        raise _Damaged(f"no {at}{key}")
    value = document[key]
    if isinstance(value, bool) or not isinstance(value, types):
        raise _Damaged(f"{at}{key} is {type(value).__name__}")
    return value


def _indices(values: list, count: int, at: str) -> list:
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < count
               for v in values):
        raise _Damaged(f"{at}: expert indices from 0 to {count - 1}")
    return values


def _number(value) -> bool:
    return (isinstance(value, NUMBER) and not isinstance(value, bool)
            and math.isfinite(value))


def _positive(value) -> bool:
    return _number(value) and value > 0
