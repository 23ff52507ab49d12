"""The per-species table of `plantkit report --per-class`: one model's accuracy per species
(`per_class_table`), and the checks of --expert and --species before any store is evaluated
(`check_per_class`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from plantkit.errors import PlantkitInputError
from plantkit.report.evaluation import class_accuracy


def per_class_table(report: dict, split: str, *, expert: str | None = None,
                    species: Sequence[str] = (), worst: int | None = None,
                    best: int | None = None) -> dict:
    """Rows of the per-class table: one model's accuracy per species, sorted by train count.

    `expert` None: the best model by top-1 on `split`. `species` (class ids or names) keeps
    only those; `worst`/`best` keep the N lowest/highest accuracies among the rest (both:
    the union). Species absent from the split have accuracy None and are never worst/best.
    """
    section = report["splits"].get(split)
    if section is None:
        raise PlantkitInputError(
            f"--split {split}: not in the report (it has {', '.join(report['splits'])})"
        )
    model = _chosen_model(report, split, expert)
    accuracy = class_accuracy(model["results"][split])
    keep = _species_indices(report, species)
    if worst is not None or best is not None:
        keep = _extremes(keep, accuracy, worst, best)
    train_counts = report["train_counts"]
    class_images = section["class_images"]
    if train_counts is not None:
        keep.sort(key=lambda i: (-train_counts[i], i))
        sorted_by = "train images"
    else:
        keep.sort(key=lambda i: (-class_images[i], i))
        sorted_by = f"{split} images (no train counts)"
    rows = [
        {
            "class_index": i,
            "class_id": report["classes"]["ids"][i],
            "name": report["classes"]["names"][i],
            "train_images": None if train_counts is None else train_counts[i],
            "split_images": class_images[i],
            "accuracy": None if math.isnan(accuracy[i]) else float(accuracy[i]),
        }
        for i in keep
    ]
    return {"split": split, "model": model["name"], "kind": model["kind"],
            "sorted_by": sorted_by, "rows": rows}


def _extremes(keep: list[int], accuracy, worst: int | None, best: int | None) -> list[int]:
    """The classes of `keep` among the `worst` lowest and the `best` highest accuracies,
    in `keep`'s order; classes without an accuracy are never picked."""
    present = [i for i in keep if not math.isnan(accuracy[i])]
    # stable sort: equal accuracies keep class-index order
    order = sorted(present, key=lambda i: accuracy[i])
    picked = set(order[:worst] if worst else [])
    picked |= set(order[::-1][:best] if best else [])
    return [i for i in keep if i in picked]


def check_per_class(outline: dict, *, expert: str | None = None,
                    species: Sequence[str] = ()) -> None:
    """Refuse an unknown --expert or --species before any store is evaluated.

    `outline`: what `build_report` passes to `before_evaluation` (or a whole report).
    """
    split = list(outline["splits"])[-1]
    if expert is not None:
        _named_model(outline["models"], expert, split, lambda m: split in m["splits"])
    _species_indices(outline, species)


def _named_model(models: list[dict], name: str, split: str, holds: Callable[[dict], bool]
                 ) -> dict:
    for model in models:
        if model["name"] == name:
            if not holds(model):
                raise PlantkitInputError(f"--expert {name}: its store has no {split} split")
            return model
    raise PlantkitInputError(
        f"--expert {name}: no such expert or combination (have: "
        f"{', '.join(m['name'] for m in models)})"
    )


def _chosen_model(report: dict, split: str, name: str | None) -> dict:
    having = [m for m in report["models"] if split in m["results"]]
    if name is not None:
        return _named_model(report["models"], name, split, lambda m: split in m["results"])
    if not having:
        raise PlantkitInputError(f"no store holds the {split} split")
    return max(having, key=lambda m: m["results"][split]["top1"] or 0.0)


def _species_indices(report: dict, species: Sequence[str]) -> list[int]:
    ids = report["classes"]["ids"]
    if not species:
        return list(range(len(ids)))
    index = {c: i for i, c in enumerate(ids)}
    by_name = {n.lower(): i for i, n in enumerate(report["classes"]["names"])}
    picked = []
    for wanted in species:
        i = index.get(str(wanted), by_name.get(str(wanted).lower()))
        if i is None:
            raise PlantkitInputError(
                f"--species {wanted}: not a class id or species name of the stores "
                f"(ids such as {', '.join(ids[:3])})"
            )
        picked.append(i)
    return list(dict.fromkeys(picked))


__all__ = ["check_per_class", "per_class_table"]
