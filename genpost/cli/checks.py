"""The CLI's value checks: every flag and ``--option`` value is checked before any work starts.

Each check raises ``OptionError`` (exit 2) with one line naming the flag and what it allows; the CLI turns
it into its one-line message. Kept apart from ``genpost.cli.commands`` so the commands module stays small.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Optional

from ..options import OptionError


def parse_fps(value: Optional[str]) -> Optional[Fraction]:
    """``--fps`` as a positive Fraction (None when not given)."""
    if value is None:
        return None
    try:
        fps = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise OptionError(f"--fps must be a number or a ratio like 30000/1001, got {value!r}") from None
    if fps <= 0:
        raise OptionError(f"--fps must be positive, got {value!r}")
    return fps


def parse_options(pairs: list[str], extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``--option`` pairs (and ``extra``), each checked against the plugins' declared options."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"--option wants PLUGIN.KEY=VALUE, got {pair!r}")
        out[key] = value
    out.update(extra or {})
    check_plugin_options(out)
    return out


def check_plugin_options(options: dict[str, str]) -> None:
    if not options:
        return
    from ..options import validate
    from ..plugins import postprocessors

    validate(options, {name: reg.cls for name, reg in postprocessors().items()})


def check_values(**values) -> None:
    """Core values: the flag and what it allows, for each value given (None: not given). The choices
    (``--carriage``, ``--on-plugin-error``) are typer's to check on the command line; here for a manifest's."""
    from ..options import Carriage, PluginErrorPolicy

    if values.get("carriage") is not None:
        Carriage.parse(values["carriage"], "--carriage")
    if values.get("on_plugin_error") is not None:
        PluginErrorPolicy.parse(values["on_plugin_error"], "--on-plugin-error")
    for flag, lo in (("max_errors", 0), ("chunk_frames", 1), ("workers", 1), ("frames", 1), ("keyint", 1),
                     ("repeat", 1), ("zoom", 1), ("gain", 1), ("frame", 0)):  # fmt: skip
        if values.get(flag) is not None and values[flag] < lo:
            raise OptionError(f"--{flag.replace('_', '-')} {values[flag]}: must be at least {lo}")
    if values.get("device") is not None:
        check_device(values["device"])


def check_device(device: str) -> None:
    """cpu, or cuda[:N] where a CUDA device is visible to torch or onnxruntime."""
    kind, _, number = device.partition(":")
    if kind not in ("cpu", "cuda") or (number and not (kind == "cuda" and number.isdigit())):
        raise OptionError(f"--device {device}: use cpu or cuda (or cuda:N)")
    if kind == "cuda" and not cuda_available():
        raise OptionError(f"--device {device}: no CUDA device is visible (torch and onnxruntime see none); use --device cpu")


def cuda_available() -> bool:
    """torch's answer where torch is installed; else an NVIDIA device node and an onnxruntime with CUDA
    (onnxruntime lists its CUDA provider whether or not a device is there)."""
    from ..learned.modeling import runtime_installed

    if runtime_installed("torch"):
        import torch

        return bool(torch.cuda.is_available())
    if runtime_installed("onnx") and os.path.exists("/dev/nvidia0") and os.environ.get("CUDA_VISIBLE_DEVICES") != "":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return False


def encoder_settings(codec, bit_depth, qp, crf, preset, keyint):
    """The base encoder's settings from the flags, each checked."""
    from ..media import EncoderSettings
    from ..options import check_encoder

    if qp is not None and crf is not None:
        raise OptionError("give --qp or --crf, not both")
    if bit_depth not in (None, 8, 10):
        raise OptionError(f"--bit-depth must be 8 or 10, got {bit_depth}")
    check_encoder(codec, qp, crf, preset)
    return EncoderSettings(codec=codec, bit_depth=bit_depth or 0, qp=qp, crf=crf, preset=preset, keyint=keyint)


def with_target(options: dict[str, str], target: str) -> dict[str, str]:
    """The job's options with ``--target`` (a job option every plugin sees); fidelity adds nothing, so its
    results are exactly those of a job without the flag."""
    from ..options import JOB_OPTIONS, by_name

    by_name(JOB_OPTIONS)["target"].parse(target, "genpost")
    return options if target == "fidelity" else {**options, "target": str(target)}


def eval_ladder(qp: Optional[str], streams: bool, bit_depth: Optional[int], preset: str, frames: Optional[int], jobs: int,
                metrics: Optional[str], default_qps) -> tuple[list[int], tuple[str, ...]]:  # fmt: skip
    """eval's ladder and opt-in metrics, checked before any work: (QPs, metrics); bad usage is exit 2."""
    from ..errors import UsageError
    from ..eval.videometrics import NAMES
    from ..options import check_encoder

    if streams and qp is not None:
        raise UsageError("give --qp (x265 ladder) or --stream files, not both")
    if bit_depth not in (None, 8, 10):
        raise UsageError(f"--bit-depth must be 8 or 10, got {bit_depth}")
    try:
        qps = [int(q) for q in qp.split(",")] if qp is not None else list(default_qps)
    except ValueError:
        raise UsageError(f"--qp wants comma-separated integers, got {qp!r}") from None
    for q in (*qps, None):
        check_encoder("libx265", q, None, preset)
    check_values(frames=frames)
    if jobs < 0:
        raise UsageError(f"--jobs must be 0 (one per core) or more, got {jobs}")
    opted = tuple(m for m in (metrics or "").split(",") if m)
    for m in opted:
        if m not in NAMES:
            raise UsageError(f"--metrics: unknown metric {m!r} (opt-in metrics: {', '.join(NAMES)})")
    return qps, opted
