"""genpost's error hierarchy: every error genpost raises on purpose is a ``GenpostError``.

Each class carries the CLI's exit code as the class attribute ``exit_code``; the CLI maps errors by class
(``except GenpostError as exc: ... exc.exit_code``), and nowhere else turns errors into exit codes. The table
of codes is in the README ("Exit codes"); tests/test_errors.py checks it against these classes.

Exit codes: 1 internal error (a bug), 2 bad usage, 3 unreadable/unsupported input, 4 unusable output path,
5 plugin problem, 6 job failed. Subclasses that exist in other modules (``ChainError`` in genpost.jobs.chain,
``Y4MError`` in genpost.media.y4m, ...) stay importable from there.

Two plugin errors must not be confused:

* ``PayloadError`` (plugin API): a plugin says the side-info payload (or the frame) is unusable; genpost
  keeps the frame it gave the plugin and counts a *fallback*. It is not a failure.
* ``ContractError``: a plugin broke the contract (returned something that is not a frame of the same shape,
  dtype and bit depth); it is counted as a plugin *error* under ``--on-plugin-error`` and ``--max-errors``,
  like any exception the plugin raised.
"""

from __future__ import annotations

EXIT_CODES = {  # the table in docs/cli.md and the README (tests check both against this)
    0: "success",
    1: "internal error (a bug; rerun with `GENPOST_DEBUG=1` for the traceback and report it)",
    2: "bad usage: unknown option or invalid value (`--option` keys and values included), an output extension the command cannot write, a raw stream without `--fps`, a feature whose optional packages are missing, or an `encode --base` stream that does not match the source (size, frame count)",
    3: "input (or its `--sideinfo` sidecar) cannot be read or decoded, or is unsupported (codec, pixel format, extension, a frame over `GENPOST_MAX_PIXELS`), or has more damaged frames than `--max-errors`",
    4: "output path unusable: it is the input, a folder, or its folder is missing",
    5: "plugin problem: unknown name, not allowed by `GENPOST_LOAD_PLUGINS`, failed to load, or written for another plugin API",
    6: "the job failed: more failed restorations than `--max-errors`, a plugin raised with `--on-plugin-error fail`, or a `--resume` work folder belongs to another job",
    130: "interrupted by Ctrl-C or SIGTERM (the destination is left untouched)",
}


class GenpostError(Exception):
    """Base of every genpost error. ``exit_code`` 1 means the error escaping to the CLI is a bug."""

    exit_code = 1


class UsageError(GenpostError, ValueError):
    """Bad usage: a value the command cannot take (an output extension it cannot write, a raw input without
    ``--fps``); the message is one line naming what is allowed."""

    exit_code = 2


class PipelineError(GenpostError):
    """The job cannot go on; the message is one line for the user."""

    exit_code = 6


class OutputPathError(PipelineError):
    """The output path is unusable (it is the input, a folder, or its folder is missing)."""

    exit_code = 4


class MediaError(GenpostError):
    """Input cannot be read/decoded/muxed as asked; the message is one line for the user."""

    exit_code = 3


class PluginError(GenpostError, RuntimeError):
    """A plugin could not be found, loaded or registered."""

    exit_code = 5


class ContractError(PluginError):
    """A plugin broke the contract at run time (e.g. ``restore`` returned a frame of another shape)."""


class PayloadError(GenpostError, ValueError):
    """Raised by ``restore`` when a payload cannot be used; the pipeline then keeps the base frame."""


__all__ = [
    "EXIT_CODES",
    "ContractError",
    "GenpostError",
    "MediaError",
    "OutputPathError",
    "PayloadError",
    "PipelineError",
    "PluginError",
    "UsageError",
]


def one_line(exc: BaseException) -> str:
    """``TypeName: the message's first line``, how a failure is reported where the run goes on (eval's
    failed points, a learned metric that cannot load)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"
