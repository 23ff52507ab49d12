"""`plantkit combine`: average, weighted, greedy, calibrated, cascaded and routed combinations
of stored experts, logit adjustment and tau-normalisation, fitted on val and scored once on
test."""

from __future__ import annotations

from typing import Annotated

import typer

from plantkit.choices import AdjustTarget as Target
from plantkit.choices import GreedyMetric, RouterInput, Space, WeightRule
from plantkit.commands._cli import Panel, console, print_json, settings, value_of


def combine(
    experts: Annotated[
        str | None,
        typer.Option(
            "--experts",
            help="Comma-separated expert names (or store paths) "
            "\\[default: every expert under ARTIFACTS/experts].",
            rich_help_panel=Panel.EXPERTS,
        ),
    ] = None,
    average: Annotated[
        bool,
        typer.Option(
            "--average", help="Mean of the experts' probabilities.", rich_help_panel=Panel.METHODS
        ),
    ] = False,
    weighted: Annotated[
        bool,
        typer.Option(
            "--weighted",
            help="Per-expert weights (the rule: --weight-by).",
            rich_help_panel=Panel.METHODS,
        ),
    ] = False,
    greedy: Annotated[
        bool,
        typer.Option(
            "--greedy",
            help="Ensemble selection with replacement (Caruana 2004) on val.",
            rich_help_panel=Panel.METHODS,
        ),
    ] = False,
    temperature: Annotated[
        bool,
        typer.Option(
            "--temperature",
            help="Per-expert temperature scaling, averaged; ECE before/after.",
            rich_help_panel=Panel.METHODS,
        ),
    ] = False,
    logit_adjust: Annotated[
        str | None,
        typer.Option(
            "--logit-adjust",
            help="Post-hoc logit adjustment z - tau * log(train prior): "
            "TAU, or auto (picked on val for --target).",
            rich_help_panel=Panel.METHODS,
        ),
    ] = None,
    tau_norm: Annotated[
        list[str] | None,
        typer.Option(
            "--tau-norm",
            metavar="EXPERT",
            help="Tau-normalised classifier of an expert (Kang et al. 2020): rows "
            "w_c / ||w_c||^tau, bias dropped, tau picked on val for --target; needs its "
            "stored features (plantkit predict --features); repeat for several.",
            rich_help_panel=Panel.METHODS,
        ),
    ] = None,
    target: Annotated[
        Target,
        typer.Option(
            "--target",
            help="What a tau picked on val maximises (--logit-adjust auto, --tau-norm).",
            rich_help_panel=Panel.METHOD_OPTIONS,
        ),
    ] = Target.top1,
    adjust_on: Annotated[
        str,
        typer.Option(
            "--adjust-on",
            help="What logit adjustment adjusts: an expert name or a "
            "method of this call (average, weighted, greedy, temperature, cascade, router).",
            rich_help_panel=Panel.METHOD_OPTIONS,
        ),
    ] = "average",
    cascade: Annotated[
        bool,
        typer.Option(
            "--cascade",
            help="Experts cheapest first; an image stops once confident.",
            rich_help_panel=Panel.METHODS,
        ),
    ] = False,
    within: Annotated[
        float | None,
        typer.Option(
            "--within",
            help="Cascade: least cost within EPS of the full average's val "
            "top-1 (a fraction) \\[default: 0.005, unless --budget].",
            rich_help_panel=Panel.CASCADE,
        ),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            help="Cascade: best val top-1 at this mean GFLOPs per image.",
            rich_help_panel=Panel.CASCADE,
        ),
    ] = None,
    router: Annotated[
        bool,
        typer.Option(
            "--router",
            help="A small gating network weights the experts per image.",
            rich_help_panel=Panel.METHODS,
        ),
    ] = False,
    router_input: Annotated[
        RouterInput | None,
        typer.Option(
            "--router-input",
            help="features: the cheapest expert's stored features; "
            "confidences: every expert's \\[default: features when stored].",
            rich_help_panel=Panel.ROUTER,
        ),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            help="Router: keep the K largest weights per image (K experts run).",
            rich_help_panel=Panel.ROUTER,
        ),
    ] = None,
    balance: Annotated[
        float,
        typer.Option(
            "--balance",
            help="Router: weight of the load-balancing loss.",
            rich_help_panel=Panel.ROUTER,
        ),
    ] = 0.01,
    seed: Annotated[
        int, typer.Option("--seed", help="Router: random seed.", rich_help_panel=Panel.ROUTER)
    ] = 0,
    space: Annotated[
        Space,
        typer.Option(
            "--space",
            help="What --average averages: probabilities or logits.",
            rich_help_panel=Panel.METHOD_OPTIONS,
        ),
    ] = Space.probs,
    weight_by: Annotated[
        WeightRule,
        typer.Option(
            "--weight-by",
            help="--weighted's rule: fit (val NLL over the simplex after "
            "temperature scaling) or accuracy (proportional to val top-1).",
            rich_help_panel=Panel.METHOD_OPTIONS,
        ),
    ] = WeightRule.fit,
    greedy_metric: Annotated[
        GreedyMetric,
        typer.Option(
            "--greedy-metric",
            help="What --greedy optimises on val.",
            rich_help_panel=Panel.METHOD_OPTIONS,
        ),
    ] = GreedyMetric.nll,
    cost: Annotated[
        list[str] | None,
        typer.Option(
            "--cost",
            metavar="<name=gflops>",
            help="NAME=GFLOPS: an expert's cost per image (overrides its store); "
            "repeat for several.",
            rich_help_panel=Panel.EXPERTS,
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            help="Prefix of the combination names (PREFIX-average ...) "
            "\\[default: the method names].",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = None,
    k: Annotated[
        str,
        typer.Option(
            "--k",
            help="The k of top-k and average-k of every result, comma-separated "
            "(the dataset authors' recipe: 1,3,5,10).",
            rich_help_panel=Panel.OUTPUT,
        ),
    ] = "1,3,5,10",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print every result as JSON.", rich_help_panel=Panel.OUTPUT),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars.", rich_help_panel=Panel.OUTPUT)
    ] = False,
) -> None:
    """Combine stored experts: fitted on val, scored once on test, saved under ARTIFACTS/combos/."""
    from plantkit.combine.cost import parse_cost_overrides
    from plantkit.combine.options import CombineOptions
    from plantkit.combine.run import run_combine
    from plantkit.metrics import parse_ks
    from plantkit.progress import progress_bar

    options = CombineOptions(
        experts=None if experts is None else experts.split(","),
        average=average,
        weighted=weighted,
        greedy=greedy,
        temperature=temperature,
        logit_adjust=logit_adjust,
        tau_norm=list(tau_norm or []),
        target=value_of(target),
        adjust_on=adjust_on,
        cascade=cascade,
        within=within,
        budget=budget,
        router=router,
        router_input=value_of(router_input),
        top_k=top_k,
        balance=balance,
        seed=seed,
        space=value_of(space),
        weight_by=value_of(weight_by),
        greedy_metric=value_of(greedy_metric),
        costs=parse_cost_overrides(cost or []),
        prefix=prefix,
        ks=parse_ks(k),
    )

    def progress(description: str, total: int):
        return progress_bar(description, total, disable=quiet, unit="row")

    result = run_combine(settings.artifacts_root, options, progress=progress)
    if as_json:
        print_json(result)
        return
    from plantkit.report.combine_tables import print_combine

    print_combine(result, console)
