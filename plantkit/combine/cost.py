"""Expected compute per image: which experts must run, at how many GFLOPs each."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from plantkit.errors import PlantkitInputError


def parse_cost_overrides(items: Iterable[str]) -> dict[str, float]:
    """{'name': gflops} from `--cost name=gflops` values."""
    costs: dict[str, float] = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        try:
            gflops = float(value)
        except ValueError:
            gflops = math.nan
        if not sep or not name or not math.isfinite(gflops) or gflops < 0:
            raise PlantkitInputError(
                f"--cost {item!r}: write NAME=GFLOPS with a number >= 0, e.g. resnet18=1.82"
            )
        costs[name] = gflops
    return costs


def expert_gflops(names: Sequence[str], attrs: Sequence[Mapping],
                  overrides: Mapping[str, float] | None = None) -> list[float | None]:
    """GFLOPs per image of each expert: the override, else the store's `gflops`, else None."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise PlantkitInputError(
            f"--cost {unknown[0]}=...: no such expert among {', '.join(names)}"
        )
    costs = []
    for name, store_attrs in zip(names, attrs):
        value = overrides.get(name, store_attrs.get("gflops"))
        costs.append(float(value) if isinstance(value, (int, float)) and value >= 0 else None)
    return costs


def ensemble_gflops(gflops: Sequence[float | None], used) -> float | None:
    """Cost of running every expert with used[m] true on every image (None if one is unknown)."""
    chosen = [g for g, u in zip(gflops, np.asarray(used, dtype=bool)) if u]
    known = [g for g in chosen if g is not None]
    if len(known) < len(chosen):
        return None
    return float(sum(known))


def require_costs(names: Sequence[str], gflops: Sequence[float | None], why: str) -> np.ndarray:
    """All experts' GFLOPs as an array; PlantkitInputError naming the first unknown one."""
    for name, value in zip(names, gflops):
        if value is None:
            raise PlantkitInputError(
                f"{why} needs every expert's GFLOPs: {name} has no gflops attribute; give "
                f"--cost {name}=GFLOPS"
            )
    return np.asarray(gflops, dtype=np.float64)
