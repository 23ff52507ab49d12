"""`plantkit combine`: average, weighted, greedy, calibrated, cascaded and routed combinations
of stored experts, fitted on val and scored once on test."""

from __future__ import annotations

import typer

from plantkit.commands._cli import console, print_json, settings


def combine(
    experts: str | None = typer.Option(
        None, "--experts", help="Comma-separated expert names (or store paths) "
        "\\[default: every expert under ARTIFACTS/experts]."
    ),
    average: bool = typer.Option(False, "--average", help="Mean of the experts' probabilities."),
    weighted: bool = typer.Option(False, "--weighted", help="Per-expert weights (--weights)."),
    greedy: bool = typer.Option(
        False, "--greedy", help="Ensemble selection with replacement (Caruana 2004) on val."
    ),
    temperature: bool = typer.Option(
        False, "--temperature", help="Per-expert temperature scaling, averaged; ECE before/after."
    ),
    logit_adjust: str | None = typer.Option(
        None, "--logit-adjust", help="Post-hoc logit adjustment z - tau * log(train prior): "
        "TAU, or auto (picked on val for --target)."
    ),
    target: str = typer.Option(
        "top1", "--target", help="What auto tau maximises on val: top1 or macro."
    ),
    adjust_on: str = typer.Option(
        "average", "--adjust-on", help="What logit adjustment adjusts: an expert name or a "
        "method of this call (average, weighted, greedy, temperature, cascade, router)."
    ),
    cascade: bool = typer.Option(
        False, "--cascade", help="Experts cheapest first; an image stops once confident."
    ),
    within: float | None = typer.Option(
        None, "--within", help="Cascade: least cost within EPS of the full average's val "
        "top-1 (a fraction; default 0.005)."
    ),
    budget: float | None = typer.Option(
        None, "--budget", help="Cascade: best val top-1 at this mean GFLOPs per image."
    ),
    router: bool = typer.Option(
        False, "--router", help="A small gating network weights the experts per image."
    ),
    router_input: str | None = typer.Option(
        None, "--router-input", help="features (the cheapest expert's stored features) or "
        "confidences (every expert's) \\[default: features when stored]."
    ),
    top_k: int | None = typer.Option(
        None, "--top-k", help="Router: keep the K largest weights per image (K experts run)."
    ),
    balance: float = typer.Option(
        0.01, "--balance", help="Router: weight of the load-balancing loss."
    ),
    seed: int = typer.Option(0, "--seed", help="Router: random seed."),
    space: str = typer.Option(
        "probs", "--space", help="--average over probabilities (probs) or logits."
    ),
    weights: str = typer.Option(
        "fit", "--weights", help="--weighted rule: fit (val NLL over the simplex after "
        "temperature scaling) or accuracy (proportional to val top-1)."
    ),
    greedy_metric: str = typer.Option(
        "nll", "--greedy-metric", help="What --greedy optimises on val: nll or top1."
    ),
    cost: list[str] | None = typer.Option(
        None, "--cost", help="NAME=GFLOPS: an expert's cost per image (overrides its store); "
        "repeat for several."
    ),
    name: str | None = typer.Option(
        None, "--name", help="Prefix of the combination names (PREFIX-average ...) "
        "\\[default: the method names]."
    ),
    k: str = typer.Option(
        "1,3,5,10", "--k", help="The k of top-k and average-k of every result, comma-separated "
        "(the dataset authors' recipe: 1,3,5,10)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print every result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Combine stored experts; every result is saved under ARTIFACTS/combos/NAME/."""
    from plantkit.combine.cost import parse_cost_overrides
    from plantkit.combine.options import CombineOptions
    from plantkit.combine.run import run_combine
    from plantkit.metrics import parse_ks
    from plantkit.progress import progress_bar

    options = CombineOptions(
        experts=None if experts is None else experts.split(","),
        average=average, weighted=weighted, greedy=greedy, temperature=temperature,
        logit_adjust=logit_adjust, target=target, adjust_on=adjust_on, cascade=cascade,
        within=within, budget=budget, router=router, router_input=router_input, top_k=top_k,
        balance=balance, seed=seed, space=space, weights=weights, greedy_metric=greedy_metric,
        costs=parse_cost_overrides(cost or []), name=name, ks=parse_ks(k),
    )

    def progress(description: str, total: int):
        return progress_bar(description, total, disable=quiet, unit="row")

    result = run_combine(settings.artifacts_root, options, progress=progress)
    if as_json:
        print_json(result)
        return
    from plantkit.commands._combine_view import print_combine

    print_combine(result, console)
