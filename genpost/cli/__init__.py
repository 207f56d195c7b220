"""The command line, ``genpost`` (typer): the one place where errors become one-line messages and exit codes.

- ``commands``: the typer app and every command; ``main`` is the console script's entry point.
- ``checks``: every flag and ``--option`` value, checked before any work starts.
- ``support``: what the commands print and how (progress, JSON, one-line errors, SIGTERM).
"""

from .commands import app, main

__all__ = ["app", "main"]
