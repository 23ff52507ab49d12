"""Errors a user can fix: the CLI prints them as one line and exits with code 2."""


class PlantkitInputError(ValueError):
    """Bad input (a path, an option, a file's content); the message says what to do."""
