"""Terminal view of `plantkit combine` results: rich tables, one per concern (the command
only parses, calls plantkit.combine.run_combine and prints these)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

_CURVE_POINTS = 12


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _num(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_combine(result: dict, console: Console) -> None:
    """Experts, then every combination side by side, then each method's own outputs."""
    console.print(_experts_table(result["experts"]))
    console.print(_results_table(result["combinations"]))
    if [k for k in result.get("ks", []) if k != 1]:
        for table in _topk_tables(result):
            console.print(table)
    for combo in result["combinations"]:
        show = _DETAILS.get(combo["method"])
        if show is not None:
            show(combo, console)
    for combo in result["combinations"]:
        console.print(f"saved {combo['name']}: {combo['store']}", highlight=False,
                      soft_wrap=True)
    for note in result.get("notes", []):
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def _read(experts: list[dict]) -> list[dict]:
    """The experts some method of the call read. The others (a --tau-norm of one expert
    among many) have no scores: a row of dashes each would bury the ones that count."""
    return [r for r in experts if r["val_top1"] is not None or r["test_top1"] is not None]


def _experts_table(rows: list[dict]) -> Table:
    read = _read(rows)
    unread = len(rows) - len(read)
    table = Table(title="Experts (top-1 and macro top-1 in %)", title_justify="left",
                  caption=f"{unread} more expert(s) not read by these methods" if unread
                  else None, caption_justify="left")
    rows = read
    table.add_column("expert", no_wrap=True)
    for column in ("GFLOPs", "val top-1", "val macro top-1", "test top-1", "test macro top-1",
                   "T"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["name"], _num(row["gflops"], 2), _pct(row["val_top1"]),
                      _pct(row["val_macro_top1"]), _pct(row["test_top1"]),
                      _pct(row["test_macro_top1"]), _num(row["temperature"], 3))
    return table


def _results_table(combos: list[dict]) -> Table:
    table = Table(title="Combinations (fitted on val, scored once on test; top-1 in %)",
                  title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("method", no_wrap=True)
    for column in ("val top-1", "val macro top-1", "test top-1", "test macro top-1",
                   "expected GFLOPs"):
        table.add_column(column, justify="right")
    best = max((c["test"]["top1"] or 0 for c in combos), default=None)
    for combo in combos:
        test_pct = _pct(combo["test"]["top1"])
        test_top1: str | Text = test_pct
        if best is not None and combo["test"]["top1"] == best:
            test_top1 = Text(test_pct, style="bold green")
        table.add_row(combo["name"], combo["method"], _pct(combo["val"]["top1"]),
                      _pct(combo["val"]["macro_top1"]), test_top1,
                      _pct(combo["test"]["macro_top1"]), _num(combo["expected_gflops"], 2))
    return table


def _pct1(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _topk_tables(result: dict) -> list[Table]:
    """Test top-k (micro / macro) of experts and combinations for each k of --k, then the
    combinations' average-k (thresholds fitted on their own val output)."""
    ks = result["ks"]
    topk = Table(title="Test top-k (micro / macro, %)", title_justify="left",
                 caption="a tie with the true class counts as a miss", caption_justify="left")
    topk.add_column("name", no_wrap=True)
    for k in ks:
        topk.add_column(f"top-{k}", justify="right", no_wrap=True)
    rows = [(row["name"], {key.removeprefix("test_"): value for key, value in row.items()})
            for row in _read(result["experts"])]
    rows += [(combo["name"], combo["test"]) for combo in result["combinations"]]
    for name, scores in rows:
        topk.add_row(name, *[f"{_pct1(scores.get(f'top{k}'))} / "
                             f"{_pct1(scores.get(f'macro_top{k}'))}" for k in ks])
    average = Table(title="Test average-k (micro / macro, %; mean set size)",
                    title_justify="left", caption="threshold fitted on the combination's val "
                    "output; experts' average-k: plantkit report", caption_justify="left")
    average.add_column("name", no_wrap=True)
    for k in ks:
        average.add_column(f"avg-{k}", justify="right", no_wrap=True)
    for combo in result["combinations"]:
        test, cells = combo["test"], []
        for k in ks:
            size = test.get(f"avg{k}_set_size")
            cells.append(f"{_pct1(test.get(f'avg{k}'))} / {_pct1(test.get(f'macro_avg{k}'))}"
                         + ("" if size is None else f" ({size:.1f})"))
        average.add_row(combo["name"], *cells)
    return [topk, average]


def _weighted(combo: dict, console: Console) -> None:
    weights = combo["params"]["weights"]
    shown = ", ".join(f"{name} {w:.3f}" for name, w in weights.items() if w > 0)
    console.print(f"{combo['name']}: weights ({combo['params']['rule']}) {shown}",
                  highlight=False, soft_wrap=True)


def _greedy(combo: dict, console: Console) -> None:
    params = combo["params"]
    chosen = ", ".join(f"{name} x{count}" for name, count in params["multiset"].items())
    step = params["path"][params["best_step"] - 1]
    score = (f"val NLL {step['val_nll']:.4f}" if params["metric"] == "nll"
             else f"val top-1 {_pct(step['val_top1'])} %")
    console.print(f"{combo['name']}: chose {chosen} ({params['picks']} picks, {score})",
                  highlight=False, soft_wrap=True)


def _temperature(combo: dict, console: Console) -> None:
    table = Table(title=f"{combo['name']}: temperature scaling, ECE before -> after",
                  title_justify="left")
    for column in ("expert", "T", "val ECE", "test ECE", "val NLL"):
        table.add_column(column, justify="left" if column == "expert" else "right")
    for row in combo["params"]["calibration"]:
        table.add_row(
            row["expert"], _num(row["temperature"]),
            f"{_num(row['val_ece_before'], 4)} -> {_num(row['val_ece_after'], 4)}",
            f"{_num(row['test_ece_before'], 4)} -> {_num(row['test_ece_after'], 4)}",
            f"{_num(row['val_nll_before'], 4)} -> {_num(row['val_nll_after'], 4)}")
    console.print(table)


def _logit_adjust(combo: dict, console: Console) -> None:
    _tau_curve(combo, console, f"val trade-off on {combo['params']['base']}")


def _tau_norm(combo: dict, console: Console) -> None:
    _tau_curve(combo, console, f"tau-normalised classifier of {combo['params']['expert']}, "
               "bias dropped; val trade-off")


def _tau_curve(combo: dict, console: Console, what: str) -> None:
    """The val curve over tau (logit adjustment, tau-normalisation), the chosen tau starred."""
    params = combo["params"]
    table = Table(title=f"{combo['name']}: {what} (tau {params['tau']:g}, "
                  f"{params['tau_rule']}, target {params['target']})", title_justify="left")
    for column in ("tau", "val top-1", "val macro top-1"):
        table.add_column(column, justify="right")
    curve = params["curve"]
    for tau, top1, macro in zip(curve["tau"], curve["val_top1"], curve["val_macro_top1"]):
        mark = " *" if tau == params["tau"] else ""
        table.add_row(f"{tau:g}{mark}", _pct(top1), _pct(macro))
    console.print(table)


def _cascade(combo: dict, console: Console) -> None:
    params = combo["params"]
    table = Table(title=f"{combo['name']}: val accuracy vs cost, one threshold for all "
                  f"stages ({' -> '.join(params['order'])})", title_justify="left")
    for column in ("threshold", "val top-1", "val GFLOPs"):
        table.add_column(column, justify="right")
    curve = params["curve"]
    # The JSON holds every point; a dozen show the shape.
    shown = sorted({round(i * (len(curve) - 1) / (_CURVE_POINTS - 1))
                    for i in range(_CURVE_POINTS)}) if len(curve) > _CURVE_POINTS else range(
        len(curve))
    for point in (curve[i] for i in shown):
        threshold = "never" if point["threshold"] is None else f"{point['threshold']:.4f}"
        table.add_row(threshold, _pct(point["val_top1"]), _num(point["val_gflops"], 2))
    console.print(table)
    chosen = params["chosen"]
    rule = (f"within {params['within']:g} of the full average's val top-1 "
            f"{_pct(params['full_average_val_top1'])} %" if params["within"] is not None
            else f"budget {params['budget']:g} GFLOPs")
    thresholds = ", ".join("never" if t is None else f"{t:.3f}" for t in params["thresholds"])
    console.print(
        f"{combo['name']}: chosen ({rule}): thresholds [{thresholds}]; val top-1 "
        f"{_pct(chosen['val_top1'])} % at {_num(chosen['val_gflops'], 2)} GFLOPs; test top-1 "
        f"{_pct(chosen['test_top1'])} % at {_num(chosen['test_gflops'], 2)} GFLOPs "
        f"(all experts: {_num(params['full_gflops'], 2)})", highlight=False, soft_wrap=True)


def _router(combo: dict, console: Console) -> None:
    params = combo["params"]
    shares = ", ".join(f"{name} {100 * s:.1f} %" for name, s in params["share"]["test"].items())
    source = (f"features of {params['input_expert']}" if params["input"] == "features"
              else "every expert's confidences")
    console.print(
        f"{combo['name']}: input {source}; cross-fitted val top-1 "
        f"{_pct(params['crossfit_val_top1'])} % vs test {_pct(params['test_top1'])} % (gap "
        f"{100 * params['overfitting_gap']:+.2f} points); test share {shares}; "
        f"{_num(combo['expected_gflops'], 2)} GFLOPs per image", highlight=False,
        soft_wrap=True)


_DETAILS = {"weighted": _weighted, "greedy": _greedy, "temperature": _temperature,
            "logit-adjust": _logit_adjust, "tau-norm": _tau_norm, "cascade": _cascade,
            "router": _router}
