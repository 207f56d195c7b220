"""Helpers of the typer CLI (genpost.cli) that hold no command logic: the progress bar, JSON output,
plot names, the installed-plugins listing, and SIGTERM handling."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager

from rich.console import Console


@contextmanager
def progress_bar(label: str, quiet: bool, console: Console):
    """A ``progress(done, total)`` callable drawing a bar on ``console`` (nothing when quiet or not a tty)."""
    if quiet or not console.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console, transient=True
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def plot_name(plot: str, run: dict) -> str:
    """``eval --plot`` over several runs: one PNG per run, named PLOT-clip-plugin.png."""
    base, ext = os.path.splitext(plot)
    return f"{base}-{os.path.splitext(os.path.basename(run['source']))[0]}-{run['plugin']}{ext or '.png'}"


def plugin_rows() -> list[dict]:
    """``genpost plugins``: one row per installed post-processor."""
    from .plugins import postprocessors

    return [
        {
            "name": name,
            "version": reg.cls.version,
            "side_info": reg.cls.side_info,
            "plugin": reg.plugin,
            "source": reg.source,
            "description": reg.cls.description,
            "options": None if reg.cls.options is None else [o.to_dict() for o in reg.cls.options],
        }
        for name, reg in sorted(postprocessors().items())
    ]


def terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (kill, timeout, docker stop) cleans up like Ctrl-C: exit 130
