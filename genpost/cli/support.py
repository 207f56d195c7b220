"""Helpers of the typer CLI (genpost.cli.commands) that hold no command logic: the progress bar, JSON output,
plot names, the installed-plugins listing, and SIGTERM handling."""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as click_errors  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]


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
    from ..plugins import postprocessors

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


# markup=False: paths, option values and pip extras such as genpost[ffmpeg] are printed as they are
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def out() -> Console:
    """stdout, printing text verbatim (no console markup)."""
    return Console(soft_wrap=True, markup=False, highlight=False)


def line(label: str, style: str, message: str) -> None:
    """One message line on stderr: a coloured label, then the message as it is."""
    err.print(Text.assemble((label, style), message))


def plain_help(command) -> None:
    """Help as a command line reads: typer 0.2x's help shows a flag as ``--json <bool>`` (it takes no value:
    ``--json true`` is refused) and a required argument as ``{source}``. Flags become plain switches and
    arguments their upper-case names (``SOURCE``, ``[DIR]``, ``SOURCES...``), in ``command`` (its help option
    included) and every subcommand."""
    for param in command.params:
        _plain_param(param)
    if not getattr(command, "_genpost_plain_help", False):
        original = command.get_help_option

        def get_help_option(ctx):
            option = original(ctx)
            if option is not None:
                _plain_param(option)
            return option

        command.get_help_option = get_help_option
        command._genpost_plain_help = True
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)


def _plain_param(param) -> None:
    if getattr(param, "is_flag", False):
        param.display_type_rich = lambda ctx: None  # the type column and the usage of a switch: nothing
    elif param.param_type_name == "argument" and param.name:
        param.metavar = param.metavar or param.name.upper()
        if hasattr(param, "_usage_display_name"):  # typer 0.2x: "{name}" when required

            def usage(p=param) -> str:
                name = p.metavar if p.required else f"[{p.metavar}]"
                return name + ("..." if p.nargs != 1 else "")

            param._usage_display_name = usage


class OneLineErrors(TyperGroup):
    """Usage errors (unknown option, a value of the wrong type) as one line on stderr, exit code 2; help
    with ``-h`` too, flags shown as switches (``plain_help``)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        plain_help(self)
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            where = exc.ctx.command_path if isinstance(exc, click_errors.UsageError) and exc.ctx else "genpost"
            message = exc.format_message().replace("Value error, ", "", 1)  # pydantic's prefix on typer's checks
            line("genpost: error: ", "red", f"{message} (see {where} --help)")
            sys.exit(exc.exit_code)
        except typer.Abort:
            line("genpost: error: ", "red", "aborted")
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


class WarningLine(logging.Handler):
    """genpost's library warnings (logger "genpost") as the CLI's one-line warnings."""

    def emit(self, record: logging.LogRecord) -> None:
        line("genpost: warning: ", "yellow", record.getMessage())


def print_version(value: bool) -> None:
    """``--version``: genpost's version and its plugin API version."""
    if value:
        from .. import __api_version__, __version__

        sys.stdout.write(f"genpost {__version__} (plugin API {__api_version__})\n")
        raise typer.Exit(0)


def register_plugin_commands(app) -> None:
    """Let plugins add commands (register_commands hook); a broken plugin must not break --help."""
    if os.environ.get("GENPOST_NO_PLUGIN_COMMANDS"):
        return
    try:
        from ..plugins import make_plugin_manager

        make_plugin_manager().hook.register_commands(cli=app)
    except Exception as exc:
        line("genpost: warning: ", "yellow", f"plugin commands not loaded: {exc}")
