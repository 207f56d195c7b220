"""Driving the ffmpeg binary as a filter/encoder stage: y4m over pipes, filters checked up front.

PyAV's FFmpeg has no VVC encoder and runs no external filter chains per job; the ffmpeg 9 binary
(``genpost.media.ffmpeg.executable``: ``GENPOST_FFMPEG`` or imageio-ffmpeg's) has libvvenc and every filter.
Command lines are built with ``ffmpeg-python`` and run as child processes that exchange y4m with genpost
(``genpost.media.y4m``); their stderr goes to a temporary file, so a failure becomes one line (the last thing
ffmpeg said) and a chatty child can never block on a full stderr pipe.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from typing import IO, Any

from ..errors import GenpostError
from ..install import MissingExtra, hint
from .ffmpeg import ENV, FFmpegError, executable

GLOBAL_ARGS = ("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-y")


class FilterError(GenpostError):
    """An FFmpeg filter string that ffmpeg rejects (bad usage)."""

    exit_code = 2


def ffmpeg_python(purpose: str = "the ffmpeg route") -> Any:
    """The ffmpeg-python module (the ``ffmpeg`` extra)."""
    try:
        import ffmpeg
    except ImportError:
        raise FFmpegError(f"{purpose} needs ffmpeg-python and an ffmpeg binary: {hint('ffmpeg', ('imageio', 'ffmpeg-python'))}") from None
    return ffmpeg


def require(purpose: str) -> None:
    """Check up front that ``purpose`` (e.g. ``--codec vvc``) can run: ffmpeg-python and an ffmpeg binary
    ($GENPOST_FFMPEG or imageio-ffmpeg's); else MissingExtra (exit 2) saying what to install."""
    import importlib

    def importable(module: str) -> bool:
        try:
            importlib.import_module(module)
        except ImportError:
            return False
        return True

    missing = [m for m in ("ffmpeg", "imageio_ffmpeg") if not importable(m) and not (m == "imageio_ffmpeg" and os.environ.get(ENV))]
    if missing:
        what = " and ".join("ffmpeg-python" if m == "ffmpeg" else "an ffmpeg binary" for m in missing)
        raise MissingExtra(f"{purpose} runs the ffmpeg binary and needs {what}: {hint('ffmpeg', ('imageio', 'ffmpeg-python'))}"
                           + (f", or set {ENV} to an ffmpeg 9 with libvvenc" if "imageio_ffmpeg" in missing else ""))
    executable(purpose)


def compile_args(stream) -> list[str]:
    """The argv of an ffmpeg-python output node, global options first (ffmpeg ignores trailing ones)."""
    args = stream.compile(cmd=executable())
    return [args[0], *GLOBAL_ARGS, *args[1:]]


@functools.cache
def _encoders(exe: str) -> frozenset[str]:
    out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True, check=False).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def require_encoder(name: str) -> None:
    exe = executable()
    if name not in _encoders(exe):
        raise FFmpegError(f"{exe} has no {name} encoder (imageio-ffmpeg's ffmpeg 9 has it; or set {ENV})")


def _first_error(path: str) -> str:
    """The first thing ffmpeg complained about (the cause; later lines are consequences), unprefixed."""
    try:
        with open(path, "rb") as fh:
            text = fh.read(65536).decode("utf-8", "replace")
    except OSError:
        return "no message"
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("Last message repeated")]
    return lines[0] if lines else "no message"


def check_filter(vf: str, label: str) -> None:
    """Let ffmpeg parse and configure ``vf`` on a tiny test picture; a bad name or option fails here,
    as one line, before any job starts."""
    with tempfile.NamedTemporaryFile(prefix="genpost-ffmpeg-", suffix=".log") as log:
        argv = [
            executable(), *GLOBAL_ARGS, "-f", "lavfi", "-i", "testsrc2=s=64x64:r=25:d=0.08,format=yuv420p",
            "-vf", vf, "-f", "null", "-",
        ]  # fmt: skip
        rc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=log, check=False).returncode
        if rc != 0:
            raise FilterError(f"{label}: ffmpeg rejects {vf!r}: {_first_error(log.name)}")


class Process:
    """An ffmpeg child with y4m on one pipe, stderr captured to a file, and cleanup on any exit."""

    def __init__(self, argv: Sequence[str], role: str, stdin=None, stdout=None):
        self.role = role
        self.argv = list(argv)
        self._log = tempfile.NamedTemporaryFile(prefix=f"genpost-{role}-", suffix=".log", delete=False)
        try:
            self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=stdout, stderr=self._log)
        except OSError as exc:
            self._cleanup()
            raise FFmpegError(f"cannot run {self.argv[0]}: {exc.strerror}") from None

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None  # opened with stdin=PIPE
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None  # opened with stdout=PIPE
        return self.proc.stdout

    def error(self) -> str:
        return _first_error(self._log.name)

    def finish(self, timeout: float | None = None) -> int:
        """Close our end of its pipes and wait for it; returns the exit status."""
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.finish(timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            pass

    def _cleanup(self) -> None:
        self._log.close()
        try:
            os.unlink(self._log.name)
        except OSError:
            pass

    def close(self) -> None:
        self.kill()
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
