"""The `plantkit` command: global options and the command groups."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from plantkit import __version__
from plantkit.commands import classify, combine, data, demo, imports, predict, report, train
from plantkit.commands._cli import err_console, error_line, examples, renamed_message, settings
from plantkit.errors import PlantkitInputError

app = typer.Typer(
    name="plantkit",
    help="Train, evaluate and combine image classifiers on long-tailed plant data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.add_typer(data.app, name="data")
app.add_typer(imports.app, name="import")
app.command(
    "train",
    epilog=examples(
        "plantkit train --data /data/plantnet_300K --arch resnet18 --pretrained --amp --workers 8",
        "plantkit train --arch test_resnet --epochs 4 --augment-below 20 --expert small-aug",
        "plantkit train --resume --expert small-aug",
        "plantkit train --loss balanced-softmax --sampler sqrt --expert bs-sqrt",
        "plantkit train --loss ldam --defer-epoch 20 --mixup 0.2 --expert ldam-drw",
        "plantkit train --init-from resnet18 --retrain-head --sampler balanced --epochs 5 "
        "--milestones 4 --expert resnet18-crt",
        "plantkit train --devices 2 --batch-size 64 --lr-scale linear --amp --compile",
    ),
)(train.train)
app.command(
    "predict",
    epilog=examples(
        "plantkit predict --expert resnet18 --split val --split test --features",
        "plantkit predict --expert imported --data /data/plantnet_300K --split test --resize 72 "
        "--crop 64",
    ),
)(predict.predict)
app.command(
    "report",
    epilog=examples(
        "plantkit report",
        "plantkit report --split test --per-class --worst 20 --html artifacts/reports/report.html",
        "plantkit report --json --k 1,5 > report.json",
    ),
)(report.report)
app.command(
    "combine",
    epilog=examples(
        "plantkit combine --average --weighted --greedy",
        "plantkit combine --cascade --within 0.005 --router --top-k 1",
        "plantkit combine --logit-adjust auto --target macro --experts resnet18,mobilenet",
        "plantkit combine --tau-norm resnet18 --tau-norm mobilenet --target macro",
    ),
)(combine.combine)
app.command(
    "classify",
    epilog=examples(
        "plantkit classify photo.jpg --with weighted",
        "plantkit classify photos/ --with cascade --top 3 --csv species.csv",
        "plantkit classify photos/ more.jpg --with resnet18 --json --quiet",
    ),
)(classify.classify)
app.command(
    "demo",
    epilog=examples(
        "plantkit demo",
        "plantkit demo --quick --out /tmp/demo",
        "plantkit demo --overwrite",
    ),
)(demo.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"plantkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts",
            envvar="PLANTKIT_ARTIFACTS",
            help="Output root for datasets, experts, combinations and reports "
            "\\[default: ./artifacts].",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="When another plantkit process is writing the same expert, combination, dataset "
            "or report, wait for it instead of refusing at once.",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train, evaluate and combine image classifiers on long-tailed plant data."""
    from plantkit.artifacts import set_wait

    settings.artifacts = artifacts
    settings.debug = debug
    set_wait(wait)


def cli_command():
    """The click command of `app`, with flags shown without a value (Typer labels every flag
    `<bool>`, as if `--debug true` were needed)."""
    root = typer.main.get_command(app)
    stack = [root]
    while stack:
        each = stack.pop()
        stack.extend(getattr(each, "commands", {}).values())
        for param in each.params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            if "Path" in str(getattr(param.type_descriptor, "annotation", "")):
                param.process_value = _refusing_empty(param.name, param.process_value)
        each.get_help_option = _valueless(each.get_help_option)  # made per call
    return root


def _command_path(ctx) -> str:
    """`plantkit CMD ...` of the command a usage error is about. Click reports some errors
    (an option missing its value) from the group's context, so the command line decides."""
    path = getattr(ctx, "command_path", None) or "plantkit"
    command = typer.main.get_command(app)
    words = ["plantkit"]
    for token in sys.argv[1:]:
        sub = getattr(command, "commands", {}).get(token)
        if sub is None:
            continue  # an option or its value
        command = sub
        words.append(token)
    deepest = " ".join(words)
    return deepest if len(deepest) > len(path) else path


def _refusing_empty(name: str, process_value):
    """An empty path is refused: pathlib reads '' as '.', so `--data ''` (an unset shell
    variable, say) would silently mean the current folder. An empty environment variable
    (`PLANTKIT_ARTIFACTS=`) counts as unset."""

    def wrapped(ctx, value):
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            source = ctx.get_parameter_source(name)
            if source is not None and source.name == "ENVIRONMENT":
                value = None
            else:
                raise typer.BadParameter("an empty path; give a file or folder")
        return process_value(ctx, value)

    return wrapped


def _valueless(get_help_option):
    def wrapped(ctx):
        option = get_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    return wrapped


def _close_hdf5_files() -> None:
    """Close every HDF5 file still open: after a write error (a full disk, say) HDF5 would
    otherwise flush them at interpreter exit and can crash there (segmentation fault)."""
    h5py = sys.modules.get("h5py")
    if h5py is None:
        return
    for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        with contextlib.suppress(Exception):
            while file_id.valid:
                file_id.close()


def _input_error(message: object, *, environment: bool = False) -> None:
    _close_hdf5_files()
    err_console.print(error_line(message), highlight=False, soft_wrap=True)
    if environment:
        # HDF5 objects of a file whose writes failed (a full disk) can crash the interpreter's
        # teardown; everything worth cleaning up was cleaned while the error unwound.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)
    sys.exit(2)


INTERRUPTED = "interrupted; finished work is kept, unfinished work was not written"
_EXIT_FOR_SIGNAL: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
_received: list[int] = []


def _on_signal(signum, frame) -> None:
    """Ctrl-C and SIGTERM unwind as a KeyboardInterrupt, so every writer cleans up its
    temporaries; which signal came decides the exit code (Typer swallows the exception)."""
    _received.append(signum)
    raise KeyboardInterrupt


def _interrupted() -> None:
    err_console.print(INTERRUPTED, highlight=False)
    sys.exit(_EXIT_FOR_SIGNAL.get(_received[0] if _received else signal.SIGINT, 130))


def run() -> None:
    """Console-script entry point: map library errors to exit codes."""
    for signum in _EXIT_FOR_SIGNAL:
        if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup and `cmd &` ignore them
            signal.signal(signum, _on_signal)
    code = _run_app()
    if _received:
        _interrupted()
    sys.exit(code)


def _run_app() -> int:
    """The command's exit code; input and environment errors are printed here."""
    from plantkit.artifacts import environment_error

    try:
        code = cli_command()(standalone_mode=False, prog_name="plantkit")
        return code if isinstance(code, int) else 0
    except PlantkitInputError as exc:
        _input_error(exc)
    except (typer.Exit, SystemExit) as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            _interrupted()
        return getattr(exc, "exit_code", getattr(exc, "code", 0))
    except typer.Abort:
        err_console.print("aborted")
        return 130
    except KeyboardInterrupt:
        _interrupted()
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        environment = environment_error(exc)
        if environment is not None:
            if settings.debug:
                traceback.print_exc()
            _input_error(environment, environment=True)
        # Usage errors (unknown option, bad value) know how to show themselves; Typer
        # vendors its own click, so recognise them by shape rather than by class.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            if hasattr(exc, "format_message") and type(exc).__name__ != "NoArgsIsHelpError":
                # One line, like every other refusal; --help has the usage.
                command = _command_path(getattr(exc, "ctx", None))
                # Typer 0.29 words a bad choice "Invalid value for '--x': Value error, ...".
                message = renamed_message(command, exc) or exc.format_message().replace(
                    ": Value error, ", ": "
                )
                err_console.print(
                    error_line(f"{message} (see `{command} --help`)"),
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                exc.show()
            return exc.exit_code
        if settings.debug:
            traceback.print_exc()
        _close_hdf5_files()
        err_console.print(
            error_line(
                f"{type(exc).__name__}: {exc}{'' if settings.debug else ' (rerun with --debug)'}",
                "unexpected error:",
            ),
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0  # not reached: the handlers above exit


if __name__ == "__main__":
    run()
