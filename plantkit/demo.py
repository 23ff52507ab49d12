"""`plantkit demo`: the reference study's whole workflow on the embedded stand-in.

Stages (each skipped when a previous run finished it; an interrupted expert resumes):
data -> analysis -> experts (train, predict val/test with features) -> combinations -> report.
Everything is written under one output folder laid out like an artifacts root.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from plantkit.artifacts import discard, reports_dir, write_text
from plantkit.data.embedded import EMBEDDED
from plantkit.errors import PlantkitInputError

STATE_FILE = "demo_state.json"
# The pages and the report document the demo writes under ARTIFACTS/reports/.
EDA_PAGE, REPORT_PAGE, REPORT_JSON = "eda.html", "report.html", "report.json"
CLASSIFY_JSON = "classify.json"  # what the last stage printed
STAGES = ("data", "analysis", "experts", "combinations", "report", "classify")
CLASSIFY_IMAGES = 4  # test photos the last stage classifies with the best combination


@dataclass(frozen=True)
class ExpertPlan:
    """One expert the demo trains: a name, a timm architecture and extra train options."""

    name: str
    arch: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DemoPlan:
    """What the demo builds; `quick` is the small variant for tests and CI."""

    classes: int
    scale: float
    image_size: int
    epochs: int
    resize: int
    crop: int
    batch_size: int
    experts: tuple[ExpertPlan, ...]
    router_folds: int

    @classmethod
    def make(cls, quick: bool = False) -> DemoPlan:
        experts = (
            ExpertPlan("resnet", "test_resnet"),
            ExpertPlan("mobilenet", "mobilenetv3_small_050"),
            ExpertPlan("convnext", "test_convnext"),
            ExpertPlan("efficientnet", "test_efficientnet"),
            ExpertPlan("resnet-augment", "test_resnet", {"augment_below": 20}),
        )
        if quick:
            return cls(classes=12, scale=0.02, image_size=32, epochs=2, resize=36, crop=32,
                       batch_size=32, experts=experts, router_folds=2)
        return cls(classes=EMBEDDED["classes"], scale=EMBEDDED["scale"],
                   image_size=EMBEDDED["image_size"], epochs=4, resize=56, crop=48,
                   batch_size=32, experts=experts, router_folds=5)

    @property
    def milestones(self) -> tuple[int, ...]:
        # The recipe's drops at 2/3 and 5/6 of the run (epochs 20 and 25 of 30).
        return (max(1, round(self.epochs * 2 / 3)), max(1, round(self.epochs * 5 / 6)))


class DemoState:
    """Which stages are finished and how long each took; saved after every stage."""

    def __init__(self, out: Path, overwrite: bool = False):
        self.path = out / STATE_FILE
        self.seconds: dict[str, float] = {}
        if self.path.is_file() and not overwrite:
            self.seconds = json.loads(self.path.read_text(encoding="utf-8"))["seconds"]

    def done(self, stage: str) -> bool:
        return stage in self.seconds

    def finish(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = round(seconds, 1)
        self.save()

    def save(self) -> None:
        write_text(self.path, json.dumps({"seconds": self.seconds}, indent=2))


def check_demo_folder(out: Path) -> None:
    """Refuse an output folder that holds files but is not a demo's (no state file): the
    demo would write into it, and --overwrite would delete it."""
    if out.exists() and not out.is_dir():
        raise PlantkitInputError(f"--out {out} is a file, not a folder")
    if out.is_dir() and not (out / STATE_FILE).is_file() and any(out.iterdir()):
        raise PlantkitInputError(
            f"--out {out} is not empty and is not a demo folder (no {STATE_FILE}): give an "
            "empty or new folder"
        )


def run_demo(
    out: Path,
    *,
    quick: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    console=None,
    on_stage: Callable[[str, str], None] | None = None,
) -> dict:
    """Run every unfinished stage into `out`; return {stage: seconds, ...} and the verdicts."""
    out = Path(out)
    check_demo_folder(out)
    if overwrite and out.exists():
        discard(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = DemoPlan.make(quick)
    state = DemoState(out, overwrite=overwrite)
    if not state.path.is_file():
        # Marks the folder as a demo folder before anything else lands in it, so a run
        # interrupted during the first stage can be continued.
        state.save()
    steps = {
        "data": lambda: _data(out, plan, quiet),
        "analysis": lambda: _analysis(out, console, quiet),
        "experts": lambda: _experts(out, plan, quiet),
        "combinations": lambda: _combinations(out, plan, console, quiet),
        "report": lambda: _report(out, console, quiet),
        "classify": lambda: _classify(out, console, quiet),
    }
    ran = {}
    for stage in STAGES:
        if state.done(stage):
            if on_stage:
                on_stage(stage, "done earlier, skipped")
            continue
        if on_stage:
            on_stage(stage, "running")
        start = time.perf_counter()
        steps[stage]()
        state.finish(stage, time.perf_counter() - start)
        ran[stage] = state.seconds[stage]
    return {"seconds": state.seconds, "ran": ran, "verdicts": verdicts(out)}


def dataset_root(out: Path) -> Path:
    from plantkit.data.embedded import embedded_root

    return embedded_root(out)


def _data(out: Path, plan: DemoPlan, quiet: bool) -> None:
    from plantkit.data.profiles import make_profile, total_counts
    from plantkit.data.synth import generate_dataset
    from plantkit.progress import progress_bar

    counts = make_profile(EMBEDDED["profile"], classes=plan.classes, scale=plan.scale)
    total = int(total_counts(counts).sum())
    with progress_bar("drawing the dataset", total=total, disable=quiet) as advance:
        generate_dataset(dataset_root(out), counts, image_size=plan.image_size,
                         seed=EMBEDDED["seed"], overwrite=True, on_image=advance)


def _analysis(out: Path, console, quiet: bool) -> None:
    from plantkit.data.eda import summarize
    from plantkit.data.layout import open_dataset
    from plantkit.report.eda_html import write_eda_html
    from plantkit.report.eda_tables import print_summary

    dataset = open_dataset(dataset_root(out))
    summary = summarize(dataset.counts(), source=str(dataset.root), dataset=dataset)
    write_eda_html(reports_dir(out) / EDA_PAGE, summary, dataset=dataset)
    if console is not None and not quiet:
        print_summary(summary, console)


def _experts(out: Path, plan: DemoPlan, quiet: bool) -> None:
    from plantkit.artifacts import CHECKPOINTS_DIR, STORE_FILE, expert_dir
    from plantkit.store import open_store
    from plantkit.training.config import TrainConfig
    from plantkit.training.fit import train_expert
    from plantkit.training.resume import read_state

    for expert in plan.experts:
        run_dir = expert_dir(out, expert.name)
        store = run_dir / STORE_FILE
        if store.is_file():
            with open_store(store) as opened:
                if {"val", "test"} <= set(opened.splits):
                    continue
        resumable = read_state(run_dir / CHECKPOINTS_DIR) is not None
        config = TrainConfig(
            data=str(dataset_root(out)), arch=expert.arch, name=expert.name,
            epochs=plan.epochs, milestones=plan.milestones, batch_size=plan.batch_size,
            resize=plan.resize, crop=plan.crop, features=True, workers=0, seed=0,
            resume=resumable, overwrite=not resumable, **expert.options,
        )
        train_expert(config, artifacts=out, quiet=quiet)


def _combinations(out: Path, plan: DemoPlan, console, quiet: bool) -> None:
    from plantkit.combine.options import CombineOptions
    from plantkit.combine.run import run_combine

    router = {"folds": plan.router_folds}
    calls = [
        CombineOptions(average=True, weighted=True, greedy=True, temperature=True,
                       logit_adjust="auto", target="macro", cascade=True, router=True,
                       router_settings=router),
        CombineOptions(router=True, top_k=1, prefix="top1", router_settings=router),
    ]
    results = [run_combine(out, options) for options in calls]
    write_text(reports_dir(out) / "combinations.json",
                      json.dumps(results, indent=2, default=str))


def _report(out: Path, console, quiet: bool) -> None:
    from plantkit.report.html import write_report_html
    from plantkit.report.inputs import collect_store_paths
    from plantkit.report.leaderboard import build_report
    from plantkit.report.tables import print_report

    report = build_report(collect_store_paths([], out), workers=1)
    write_text(reports_dir(out) / REPORT_JSON, json.dumps(report))
    write_report_html(reports_dir(out) / REPORT_PAGE, report)
    if console is not None and not quiet:
        print_report(report, console)


def _classify(out: Path, console, quiet: bool) -> None:
    """A few test photos through the best combination (by test top-1), as `plantkit
    classify` shows them."""
    from plantkit.classify import classify_images, find_images, resolve_model
    from plantkit.data.layout import open_dataset
    from plantkit.report.classify_tables import print_classification

    report = json.loads((reports_dir(out) / REPORT_JSON).read_text(encoding="utf-8"))
    combinations = sorted(
        (m for m in report["models"] if m["kind"] != "expert"
         and (m["results"].get("test") or {}).get("top1") is not None),
        key=lambda m: -m["results"]["test"]["top1"])
    if not combinations:
        return
    model = resolve_model(out, combinations[0]["name"])
    dataset = open_dataset(dataset_root(out))
    test = dataset.splits["test"]
    step = max(1, len(test) // CLASSIFY_IMAGES)  # spread over the species (rows by class)
    photos = find_images([dataset.images_dir / test.paths[i]
                          for i in range(0, len(test), step)][:CLASSIFY_IMAGES])
    result = classify_images(model, photos, top=3)
    write_text(reports_dir(out) / CLASSIFY_JSON, json.dumps(result, default=str))
    if console is not None and not quiet:
        print_classification(result, console)


def verdicts(out: Path) -> list[str]:
    """One honest line per combination: does it beat the best single expert on test?"""
    path = reports_dir(out) / REPORT_JSON
    if not path.is_file():
        return []
    report = json.loads(path.read_text(encoding="utf-8"))
    models = report["models"]

    def top1(model):
        result = model["results"].get("test") or {}
        return result.get("top1")

    experts = [m for m in models if m["kind"] == "expert" and top1(m) is not None]
    if not experts:
        return []
    best = max(experts, key=top1)
    lines = []
    for model in models:
        if model["kind"] == "expert" or top1(model) is None:
            continue
        gap = 100 * (top1(model) - top1(best))
        word = "beats" if gap > 0 else "does not beat"
        lines.append(
            f"{model['name']}: test top-1 {100 * top1(model):.1f} % {word} the best expert "
            f"({best['name']}, {100 * top1(best):.1f} %) on this data ({gap:+.1f} points), "
            f"at {_gflops(model)} GFLOPs per image"
        )
    return lines


def _gflops(model) -> str:
    value = model.get("gflops")
    return "-" if value is None else f"{value:.3g}"
