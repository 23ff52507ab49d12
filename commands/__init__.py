"""plantkit's command line: one Typer sub-app per module, assembled in main.py.

Installed as `plantkit.commands`; a command module parses options, calls the library
and prints, and holds no logic a library user would want.
"""
