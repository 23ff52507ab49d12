"""Classify new photos with an expert or a combination: `plantkit classify`.

resolve_model(...) and find_images(...) check everything that can be checked without torch
(the CLI calls them before importing it); classify_images(...) loads the experts and applies
the model batch by batch (plantkit.combine.apply): a dense combination runs all its experts
on every image, a cascade runs its cheapest expert on every image of a batch and each later
one only on the images still unsure, a router runs its input expert (or, on confidence
inputs, every expert) and then each expert only on the images it weighs (with --top-k K at
most K per image). Each image's probabilities are the ones the
combination's stored predictions give for it (the same preprocessing as `plantkit predict`:
plantkit.predict.expert_transform_spec and the recorded resize).
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plantkit.artifacts import (
    COMBINATION_FILE,
    EXPERT_FILE,
    STORE_FILE,
    combo_dir,
    expert_dir,
    read_json,
    write_text,
)
from plantkit.combine.apply import (
    Runnable,
    apply_batch,
    expert_as_runnable,
    read_runnable,
)
from plantkit.data.layout import IMAGE_EXTENSIONS
from plantkit.errors import PlantkitInputError

CSV_COLUMNS = ("path", "rank", "species_id", "species_name", "probability", "experts")
Progress = Callable[[str, int], AbstractContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class Model:
    """An expert or a combination ready to load: its runnable form, the folders of the
    experts it may run (by index in the runnable) and the cost `combine` expected."""

    name: str
    kind: str  # "expert" | "combination"
    method: str
    folder: Path  # the expert's or the combination's
    runnable: Runnable
    folders: dict[int, Path]
    documents: dict[int, dict]
    expected_gflops: float | None


def resolve_model(artifacts_root: str | os.PathLike, name: str) -> Model:
    """The expert or combination `name` under the artifacts root (torch-free). Refused in
    one line: unknown name, a combination whose experts are missing or changed since it was
    fitted (weights sha256) or whose saved files are missing, damaged expert files."""
    from plantkit.models.expert_files import check_expert_folder

    combo, expert = combo_dir(artifacts_root, name), expert_dir(artifacts_root, name)
    is_combo = (combo / COMBINATION_FILE).is_file()
    is_expert = (expert / EXPERT_FILE).is_file()
    if is_combo and is_expert:
        raise PlantkitInputError(
            f"{name} is both an expert ({expert}) and a combination ({combo}): rename one")
    if is_expert:
        document = check_expert_folder(expert)
        gflops = (document.get("info") or {}).get("gflops")
        runnable = expert_as_runnable(name, document.get("weights_sha256"), gflops,
                                      int(document["config"]["num_classes"]))
        return Model(name, "expert", "expert", expert, runnable, {0: expert}, {0: document},
                     gflops)
    if not is_combo and expert.is_dir():
        raise PlantkitInputError(
            f"expert {name} has no weights ({expert} holds no {EXPERT_FILE}: its logits were "
            "imported): it cannot classify images")
    if not is_combo:
        raise PlantkitInputError(
            f"no expert or combination named {name} under {Path(artifacts_root)}: train one "
            "(`plantkit train`) or combine experts (`plantkit combine`)")
    summary = read_json(combo / COMBINATION_FILE, "the combination's document")
    method = str(summary.get("method"))
    runnable = read_runnable(combo, name)
    folders, documents = {}, {}
    for m in runnable.runs:
        entry = runnable.document["experts"][m]
        folder = expert_dir(artifacts_root, entry["name"])
        if not (folder / EXPERT_FILE).is_file():
            raise PlantkitInputError(
                f"expert {entry['name']} of combination {name} is missing ({folder}): "
                "restore it or refit with `plantkit combine`")
        document = check_expert_folder(folder)
        if document.get("weights_sha256") != entry["weights_sha256"]:
            raise PlantkitInputError(
                f"expert {entry['name']} changed since combination {name} was fitted (its "
                "weights sha256 differs): refit with `plantkit combine`")
        folders[m], documents[m] = folder, document
    return Model(name, "combination", method, combo, runnable, folders, documents,
                 summary.get("expected_gflops"))


def find_images(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Image files given or found (recursively, by IMAGE_EXTENSIONS, hidden names skipped)
    under the given folders, each as given or found; a missing path is refused."""
    images: list[str] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts))
            images.extend(str(p) for p in found)
        elif path.is_file():
            images.append(str(given))
        else:
            raise PlantkitInputError(f"{given} does not exist: give image files or folders")
    return list(dict.fromkeys(images))


def check_csv_target(path: Path | None) -> None:
    if path is None:
        return
    if path.is_dir():
        raise PlantkitInputError(f"--csv {path} is a folder: give a file name")
    if not path.parent.is_dir():
        raise PlantkitInputError(f"--csv {path}: the folder {path.parent} does not exist")


def classify_images(model: Model, images: Sequence[str], *, top: int = 5,
                    batch_size: int = 64, workers: int = 0, amp: bool = False,
                    progress: Progress | None = None,
                    warn: Callable[[str], None] | None = None) -> dict:
    """Classify `images` with `model`: per image its top-`top` species and the experts that
    ran; the images that could not be read; the measured cost. Keys in docs/combine.md."""
    if top < 1:
        raise PlantkitInputError(f"--top must be at least 1, got {top}")
    if not images:
        raise PlantkitInputError("no image to classify")
    runner = _Runner(model, amp)
    names, names_source = _species_names(model)
    rows: list[dict] = []
    skipped: list[dict] = []
    start = time.perf_counter()
    with (progress("classifying", len(images)) if progress is not None
          else nullcontext(None)) as advance:
        for batch in _batches(images, runner.specs, batch_size, workers):
            skipped.extend({"path": images[i], "reason": why} for i, why in batch.bad)
            if batch.good:
                rows.extend(runner.run(batch, images, names, top))
            if advance is not None:
                advance(len(batch.good) + len(batch.bad))
    wall = time.perf_counter() - start
    if skipped and warn is not None:
        shown = ", ".join(s["path"] for s in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warn(f"warning: skipped {len(skipped)} unreadable image(s): {shown}{more}")
    if not rows:
        raise PlantkitInputError(f"none of the {len(images)} image(s) could be read")
    return {"name": model.name, "kind": model.kind, "method": model.method,
            "species_names": names_source, "images": rows, "skipped": skipped,
            "cost": runner.cost(len(rows), wall, model.expected_gflops)}


class _Runner:
    """The loaded experts of a model and what they ran on."""

    def __init__(self, model: Model, amp: bool):
        from plantkit.models.expert import load_expert
        from plantkit.predict import default_resize, expert_transform_spec, recorded_resize

        self.model, self.runnable = model, model.runnable
        self.experts: dict[int, Any] = {}  # plantkit.models.expert.Expert (torch: imported late)
        self.spec_of: dict[int, int] = {}
        self.specs: list = []  # the distinct TransformSpecs of the experts
        for m, folder in model.folders.items():
            expert = load_expert(folder, amp=amp)
            resize = recorded_resize(folder, model.documents[m])
            spec = expert_transform_spec(
                expert, default_resize(expert.config["input_size"]) if resize is None else resize)
            if spec not in self.specs:
                self.specs.append(spec)
            self.experts[m], self.spec_of[m] = expert, self.specs.index(spec)
        _ = self.runnable.fold_routers  # a router's gates: loaded (or refused) before any image
        self.images_run = {m: 0 for m in model.folders}

    def run(self, batch, images: Sequence[str], names: Sequence[str], top: int) -> list[dict]:
        from plantkit.metrics import softmax

        n = len(batch.good)
        runs = _BatchRuns(self, batch, n)
        probs = softmax(apply_batch(self.runnable, runs, n))
        ran = runs.ran
        class_ids = self._class_ids()
        expert_names = self.runnable.names
        out = []
        for row, i in enumerate(batch.good):
            order = np.argsort(-probs[row], kind="stable")[:top]
            out.append({
                "path": images[i],
                "experts": [expert_names[m] for m in self.runnable.document["order"]
                            if m in ran and ran[m][row]],  # in run order: cheapest first
                "top": [{"rank": r + 1, "species_id": class_ids[c], "species_name": names[c],
                         "probability": float(probs[row, c])} for r, c in enumerate(order)],
            })
        return out

    def _class_ids(self) -> list[str]:
        first = self.model.documents[min(self.model.documents)]
        ids = first.get("class_ids")
        return ([str(c) for c in ids] if ids else
                [str(c) for c in range(self.runnable.num_classes)])

    def cost(self, n_images: int, wall: float, expected: float | None) -> dict:
        names = self.runnable.names
        gflops = {m: (self.model.documents[m].get("info") or {}).get("gflops")
                  for m in self.experts}
        known = {m: float(g) for m, g in gflops.items() if g is not None}
        measured = (float(sum(known[m] * n for m, n in self.images_run.items()) / n_images)
                    if len(known) == len(gflops) else None)
        return {"images": n_images, "wall_s": wall,
                "images_per_s": n_images / wall if wall > 0 else None,
                "measured_gflops_per_image": measured,
                "expected_gflops_per_image": expected,
                "expert_images": {names[m]: n for m, n in sorted(self.images_run.items())}}


class _BatchRuns:
    """The experts of a _Runner on one batch (plantkit.combine.apply.ExpertRuns), counting
    which images each ran on."""

    def __init__(self, runner: _Runner, batch, n: int):
        self.runner, self.batch = runner, batch
        self.ran = {m: np.zeros(n, dtype=bool) for m in runner.experts}

    def logits(self, m: int, rows: np.ndarray) -> np.ndarray:
        return self._forward(m, rows, features=False)[0]

    def logits_and_features(self, m: int, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, features = self._forward(m, rows, features=True)
        if features is None:
            raise RuntimeError(f"expert {m} gave no features")
        return logits, features

    def _forward(self, m: int, rows: np.ndarray, features: bool):
        import torch

        runner = self.runner
        inputs = self.batch.inputs[runner.spec_of[m]][torch.as_tensor(rows)]
        logits, feats = runner.experts[m].predict_batch(inputs, features=features)
        self.ran[m][rows] = True
        runner.images_run[m] += len(rows)
        return (np.array(logits.float().cpu().numpy(), dtype=np.float32),
                None if feats is None else np.array(feats.float().cpu().numpy(),
                                                     dtype=np.float32))


def _species_names(model: Model) -> tuple[list[str], str]:
    """Species names in class order, as plantkit report finds them (plantkit.report.inputs
    .species_names) from the first expert's store attributes and training dataset."""
    from plantkit.artifacts import read_train_config
    from plantkit.report.inputs import species_names
    from plantkit.store import open_store

    m = min(model.documents)
    document, folder = model.documents[m], model.folders[m]
    ids = [str(c) for c in (document.get("class_ids") or
                            range(int(document["config"]["num_classes"])))]
    attrs: dict = {}
    store = folder / STORE_FILE
    if store.is_file():
        try:
            with open_store(store) as opened:
                attrs = dict(opened.attrs)
        except (OSError, PlantkitInputError):  # names only: a damaged store is not needed
            attrs = {}
    return species_names(ids, attrs, _training_dataset(read_train_config(folder)))


def _training_dataset(training: dict | None) -> dict | None:
    root = ((training or {}).get("dataset") or {}).get("root")
    if not root or not Path(root).is_dir():
        return None
    from plantkit.data.layout import open_dataset

    try:
        opened = open_dataset(root)
    except PlantkitInputError:  # names only: a dataset moved or changed is not needed
        return None
    return {"names": dict(opened.class_names), "root": str(opened.root)}


@dataclass
class _Batch:
    good: list[int]  # indices into the image list
    inputs: list  # per transform spec: a tensor len(good) x 3 x crop x crop
    bad: list[tuple[int, str]]


def _batches(images: Sequence[str], specs, batch_size: int, workers: int):
    import torch
    from torch.utils.data import DataLoader

    files: Any = _ImageFiles(images, specs)  # a map-style dataset: __len__, __getitem__
    loader: Any = DataLoader(files, batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=_collate,
                        pin_memory=torch.cuda.is_available())
    yield from loader


class _ImageFiles:
    """Each image once per transform spec, decoded as prediction decodes it (JPEG draft at
    the spec's resize: plantkit.data.loading.ImageDataset)."""

    def __init__(self, images: Sequence[str], specs):
        from plantkit.data.transforms import eval_transform

        self.images, self.specs = list(images), list(specs)
        self.transforms = [eval_transform(spec) for spec in self.specs]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from plantkit.data.decode import open_image

        try:
            return i, [transform(open_image(self.images[i], min_side=spec.resize))
                       for spec, transform in zip(self.specs, self.transforms)]
        except Exception as exc:  # noqa: BLE001 - any decoder failure means unreadable
            return i, f"{type(exc).__name__}: {exc}"


def _collate(samples: list) -> _Batch:
    import torch

    good = [(i, x) for i, x in samples if not isinstance(x, str)]
    bad = [(i, x) for i, x in samples if isinstance(x, str)]
    inputs = ([torch.stack([x[s] for _, x in good]) for s in range(len(good[0][1]))]
              if good else [])
    return _Batch([i for i, _ in good], inputs, bad)


def write_csv(result: dict, path: Path) -> None:
    """One row per image and rank: CSV_COLUMNS, experts joined by '+'. Through the write
    protocol: a run killed while writing leaves the old file or none, never half a table."""
    handle = io.StringIO(newline="")
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    for image in result["images"]:
        for entry in image["top"]:
            writer.writerow([image["path"], entry["rank"], entry["species_id"],
                             entry["species_name"], repr(entry["probability"]),
                             "+".join(image["experts"])])
    write_text(path, handle.getvalue())
