"""The long-tail options each expert was trained with: read from the train_config.json beside
its store into the report's model entry (`read_options`), and the ones worth showing
(`options_table`), which the terminal table, the HTML page and the TUI all show alike."""

from __future__ import annotations

import dataclasses
import os

from plantkit.artifacts import read_train_config
from plantkit.choices import LOSS_OPTIONS
from plantkit.errors import PlantkitInputError
from plantkit.training.config import TrainConfig

# The options that change how a run treats the long tail, in the order shown. Read by name,
# never as a TrainConfig: a config of an older plantkit lacks some of them.
LONG_TAIL_OPTIONS = ("loss", "sampler", "tau", "beta", "focal_gamma", "defer_epoch", "mixup",
                     "cutmix", "retrain_head")
# The losses' own options: shown for the loss that has them only.
_LOSS_OWN_KEYS = frozenset(key for keys in LOSS_OPTIONS.values() for key in keys)
# Shown even at its default: the loss names the method ("ce": plain cross-entropy).
ALWAYS_SHOWN = frozenset({"loss"})


def read_options(folder: str | os.PathLike) -> dict | None:
    """The LONG_TAIL_OPTIONS recorded in the train_config.json in `folder`, as recorded;
    None without a readable one (an imported expert): the numbers are reported all the same."""
    try:
        document = read_train_config(folder)
    except PlantkitInputError:
        return None
    config = (document or {}).get("config")
    if not isinstance(config, dict):
        return None
    return {key: config[key] for key in LONG_TAIL_OPTIONS if key in config}


def _defaults() -> dict:
    """`plantkit train`'s default of every option that has a plain one."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig)
            if f.default is not dataclasses.MISSING}


def _is_off(value) -> bool:
    # A tau or a focal gamma of 0 is a choice worth showing; a mixup or CutMix alpha of 0 is
    # off (0 == False, so compared by identity first).
    return value is None or value is False or value in ("", "none")


def shown_options(options: dict | None) -> dict[str, str]:
    """key -> text of the recorded options that set the run apart from the plain recipe:
    the loss always, its own options (LOSS_OPTIONS: given, else the loss's default; another
    loss's are not shown), the others when on and not at their default."""
    options = options or {}
    defaults = _defaults()
    own = LOSS_OPTIONS.get(str(options.get("loss")), {})
    shown = {}
    for key, value in options.items():
        if key in _LOSS_OWN_KEYS:
            if key in own:
                shown[key] = option_text(own[key] if value is None else value)
        elif key in ALWAYS_SHOWN or not (
                _is_off(value) or (key in ("mixup", "cutmix") and value == 0)
                or (key in defaults and value == defaults[key])):
            shown[key] = option_text(value)
    return shown


def option_text(value) -> str:
    if value is True:
        return "yes"
    if isinstance(value, float):
        return f"{value:g}"  # 0.9999 whole, where 3 significant digits would print 1
    return str(value)


def header(key: str) -> str:
    return key.replace("_", " ")


def options_table(report: dict) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """(the option keys any expert shows, (name, shown options) per expert with a
    train_config.json); no rows when none has one."""
    rows = [(m["name"], shown_options(m["training_options"])) for m in report["models"]
            if m.get("training_options") is not None]
    keys = [key for key in LONG_TAIL_OPTIONS if any(key in shown for _, shown in rows)]
    return keys, rows


def left_out_text() -> str:
    """What an option left out (a blank cell, a column not there) stands for."""
    return ("an option left out is off, at plantkit train's default, not an option of the "
            "expert's loss, or not recorded (a run of an older plantkit)")


__all__ = ["LONG_TAIL_OPTIONS", "header", "left_out_text", "option_text", "options_table",
           "read_options", "shown_options"]
