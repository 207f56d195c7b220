"""The ffmpeg binary genpost runs for VMAF (PyAV's FFmpeg has no libvmaf).

``GENPOST_FFMPEG`` names a system ffmpeg (it needs libvmaf with its built-in models); otherwise the static
ffmpeg 9 shipped in the ``imageio-ffmpeg`` wheel is used. Commands are built with ``ffmpeg-python`` and
read y4m files only, so both inputs reach libvmaf in the same pixel format with no hidden conversion.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import GenpostError
from ..install import MissingExtra, hint

ENV = "GENPOST_FFMPEG"
VMAF_NEG = "vmaf_v0.6.1neg"  # libvmaf's built-in "no enhancement gain" model


class FFmpegError(GenpostError):
    """The ffmpeg binary is missing or failed; the message is one line for the user."""

    exit_code = 6


def executable(purpose: str = "VMAF") -> str:
    """Path of the ffmpeg binary: $GENPOST_FFMPEG (a path or a name on PATH), else imageio-ffmpeg's
    (``purpose`` names the feature in the message when neither is there)."""
    chosen = os.environ.get(ENV)
    if chosen:
        found = shutil.which(chosen)
        if not found:
            raise FFmpegError(f"{ENV}={chosen} is not an executable ffmpeg")
        return found
    try:
        import imageio_ffmpeg
    except ImportError:
        raise FFmpegError(f"{purpose} needs an ffmpeg binary: {hint('ffmpeg', ('imageio',))}, or set {ENV}") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.lru_cache(maxsize=4)
def _version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise FFmpegError(f"cannot run {exe}: {exc.strerror or exc}") from None
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.split(" Copyright")[0].removeprefix("ffmpeg version ").strip()


def version() -> str:
    """The binary's version string, e.g. 'n9.0.2-17-g2a571b6068-20260930'."""
    return _version(executable())


@functools.lru_cache(maxsize=4)
def _libvmaf_version(exe: str) -> str:
    with tempfile.TemporaryDirectory(prefix="genpost-vmaf-") as tmp:
        log = Path(tmp) / "probe.json"
        probe = "color=c=gray:s=64x64:d=0.04,format=yuv420p"
        vmaf = f"libvmaf=model=version={VMAF_NEG}:log_fmt=json:log_path={log}"
        cmd = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", probe, "-f", "lavfi",
               "-i", probe, "-lavfi", vmaf, "-f", "null", "-"]  # fmt: skip
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except OSError as exc:
            raise FFmpegError(f"cannot run {exe}: {exc.strerror or exc}") from None
        if out.returncode != 0 or not log.is_file():
            lines = out.stderr.strip().splitlines()
            raise FFmpegError(f"{exe} cannot run libvmaf with {VMAF_NEG}: {lines[-1] if lines else 'no log'}")
        return str(json.loads(log.read_text()).get("version", "unknown"))


def require_vmaf(purpose: str, extra: str, instead: str = "") -> None:
    """Check before any work that VMAF can run (ffmpeg-python, and an ffmpeg binary: $GENPOST_FFMPEG or
    imageio-ffmpeg's); else MissingExtra (exit 2) with the install line of ``extra`` and ``instead``."""
    import importlib.util

    missing = []
    if importlib.util.find_spec("ffmpeg") is None:
        missing.append("ffmpeg-python")
    if not os.environ.get(ENV) and importlib.util.find_spec("imageio_ffmpeg") is None:
        missing.append("an ffmpeg binary")
    if missing:
        raise MissingExtra(
            f"{purpose} needs {' and '.join(missing)}: {hint(extra, ('imageio', 'ffmpeg-python'))}{instead}"
        )
    executable(purpose)


def libvmaf_version() -> str:
    """libvmaf's version as it reports it; also proves the binary has libvmaf and the NEG model."""
    return _libvmaf_version(executable())


def vmaf(distorted: str | os.PathLike, reference: str | os.PathLike, model: str = VMAF_NEG, threads: int = 0) -> dict:
    """VMAF of two y4m files of the same size and pixel format with a libvmaf built-in model.

    Returns ``{"mean": pooled arithmetic mean, "frames": [per-frame scores], "libvmaf": version, "model"}``.
    """
    return vmaf_models(distorted, reference, (model,), threads)[model]


def vmaf_models(distorted, reference, models=(VMAF_NEG,), threads: int = 0) -> dict[str, dict]:
    """Several built-in VMAF models in one libvmaf pass (the features are extracted once): model -> result
    as ``vmaf`` returns it."""
    try:
        import ffmpeg as ffmpeg_python
    except ImportError:
        raise MissingExtra(f"VMAF needs ffmpeg-python: {hint('eval', ('ffmpeg-python',))}") from None
    exe = executable()
    with tempfile.TemporaryDirectory(prefix="genpost-vmaf-") as tmp:
        log = str(Path(tmp) / "vmaf.json")
        graph = ffmpeg_python.filter(
            [ffmpeg_python.input(str(distorted)), ffmpeg_python.input(str(reference))],
            "libvmaf",
            model="|".join(f"version={m}:name=m{i}" for i, m in enumerate(models)),
            log_fmt="json",
            log_path=log,
            n_threads=threads or min(4, os.cpu_count() or 1),
        )
        cmd = ffmpeg_python.output(graph, "-", format="null").global_args(
            "-hide_banner", "-nostdin", "-loglevel", "error"
        )
        try:
            cmd.run(cmd=exe, capture_stdout=True, capture_stderr=True)
        except ffmpeg_python.Error as exc:
            lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
            raise FFmpegError(f"libvmaf failed: {lines[-1] if lines else exc}") from None
        except OSError as exc:
            raise FFmpegError(f"cannot run {exe}: {exc.strerror or exc}") from None
        with open(log) as fh:
            result = json.load(fh)
    out = {}
    for i, model in enumerate(models):
        frames = [f["metrics"][f"m{i}"] for f in result.get("frames", [])]
        if not frames:
            raise FFmpegError("libvmaf returned no frames")
        pooled = result.get("pooled_metrics", {}).get(f"m{i}", {}).get("mean")
        out[model] = {
            "mean": float(pooled if pooled is not None else sum(frames) / len(frames)),
            "frames": frames,
            "libvmaf": str(result.get("version", "unknown")),
            "model": model,
        }
    return out
