"""`plantkit` from this checkout, installed or not: python benchmarks/gpu/plantkit_cli.py ARGS.

The console script is `plantkit.commands.main:run` (pyproject.toml), and plantkit has no
`__main__.py`, so there is no `python -m plantkit`. The CLI's modules live in the top-level
`commands/` folder and only an install maps them to `plantkit.commands`; on a machine where
plantkit is not installed (the GPU machine), this script makes that mapping itself.
"""

from __future__ import annotations

import importlib.util
import sys

from common import ROOT, add_paths, force_compile_backend


def import_cli():
    add_paths()
    try:
        from plantkit.commands.main import run
    except ModuleNotFoundError as exc:
        if exc.name != "plantkit.commands":
            raise
        import plantkit

        spec = importlib.util.spec_from_file_location(
            "plantkit.commands", ROOT / "commands" / "__init__.py",
            submodule_search_locations=[str(ROOT / "commands")])
        if spec is None or spec.loader is None:
            raise
        module = importlib.util.module_from_spec(spec)
        sys.modules["plantkit.commands"] = module
        spec.loader.exec_module(module)
        plantkit.commands = module  # type: ignore[attr-defined]
        from plantkit.commands.main import run
    return run


if __name__ == "__main__":
    force_compile_backend()  # the dry run's backend for `plantkit train --compile`, if set
    import_cli()()
