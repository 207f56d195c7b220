"""genpost bench: end-to-end speed of decode -> restore -> x265 encode, per stage, against a plain baseline.

The baseline (``media.plain_transcode``) is PyAV decode straight into the same x265 encoder and muxer, run
in the same process and alternated with genpost's runs, so the overhead ratio holds on a noisy machine.
Both sides write video only (no audio copy). Frames are streamed: memory stays flat in clip length.
Stage names, timing scopes and the optional plugin split are documented in docs/evaluation.md.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import tempfile
import time
from fractions import Fraction
from importlib import metadata
from typing import Callable

import numpy as np

from .. import media
from ..errors import PipelineError, UsageError
from ..options import PluginErrorPolicy
from ..postprocessor import Context
from ..runner.loop import EnhanceReport, FrameRestorer, PluginStats, collect_side_info, load_postprocessors
from ..types import to_bit_depth

STAGES = ("decode", "side_info", "to_model", "model", "from_model", "encode", "mux")


class BenchError(PipelineError):
    exit_code = 2


# ---------------------------------------------------------------- memory


def _reset_peak_rss() -> bool:
    """Reset the kernel's resident-set high-water mark (Linux clear_refs 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _gpu(device: str, reset: bool) -> float | None:
    """Peak CUDA memory in MiB when the job runs on CUDA and torch is already loaded by a plugin."""
    torch = sys.modules.get("torch")
    if not device.startswith("cuda") or torch is None or not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.reset_peak_memory_stats()
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


# ---------------------------------------------------------------- one genpost run


def _split(chain) -> dict[str, float]:
    """Seconds plugins report in an optional ``stage_seconds`` dict (to_model / from_model)."""
    out = {"to_model": 0.0, "from_model": 0.0}
    for proc in chain:
        for key, value in (getattr(proc, "stage_seconds", None) or {}).items():
            if key in out:
                out[key] += float(value)
    return out


def _genpost_run(path, output, settings, chain, fps, max_frames, options=None) -> dict:
    """The per-frame path of ``genpost.jobs.enhance.enhance`` (same calls), timed by stage."""
    t = dict.fromkeys(STAGES, 0.0)
    split_before = _split(chain)
    start, cpu = time.perf_counter(), time.process_time()
    with media.InputFile(path, fps) as inp:
        if not inp.timed:
            raise UsageError(f"{path} is a raw stream without timing; give --fps")
        t0 = time.perf_counter()
        index = collect_side_info(inp)
        t["side_info"] = time.perf_counter() - t0
        info = inp.info
        report = EnhanceReport(str(output), 0, [p.name for p in chain], {p.name: PluginStats() for p in chain})
        ctx = Context(stream=info, options=dict(options or {}))
        restorer = FrameRestorer(chain, index, ctx, report, on_plugin_error=PluginErrorPolicy.FAIL)
        frames = 0
        with media.OutputFile(output, info, settings) as out:
            units = inp.demux(copy_others=False)
            while max_frames is None or frames < max_frames:
                t0 = time.perf_counter()
                unit = next(units, None)
                t["decode"] += time.perf_counter() - t0
                if unit is None:
                    break
                for frame in unit.frames[: None if max_frames is None else max_frames - frames]:
                    t0 = time.perf_counter()
                    frame = restorer(frame)
                    t1 = time.perf_counter()
                    t["model"] += t1 - t0
                    frame = to_bit_depth(frame, info.bit_depth)
                    t["encode"] += time.perf_counter() - t1
                    out.encode(frame)
                    frames += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    split_after = _split(chain)
    for key in ("to_model", "from_model"):
        t[key] = split_after[key] - split_before[key]
        t["model"] -= t[key]
    t["encode"] += out.seconds["encode"]
    t["mux"] = out.seconds["mux"]
    with_side_info = sum(stats.with_side_info for stats in report.per_plugin.values())
    return {"frames": frames, "wall": wall, "cpu": cpu, "stages": t, "with_side_info": with_side_info}


def _baseline_run(path, output, settings, fps, max_frames) -> dict:
    start, cpu = time.perf_counter(), time.process_time()
    result = media.plain_transcode(path, output, settings, fps, max_frames)
    return {"frames": result["frames"], "wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}


# ---------------------------------------------------------------- the benchmark


def bench(
    input: str | os.PathLike,
    plugin: str,
    *,
    frames: int | None = None,
    device: str = "cpu",
    fps: Fraction | None = None,
    preset: str = "medium",
    crf: float = 18.0,
    repeat: int = 2,
    progress: Callable[[str], None] = lambda msg: None,
    options: dict[str, str] | None = None,
) -> dict:
    """Best-of-``repeat`` fps of genpost (decode -> restore -> x265) and of the plain baseline, alternated.

    ``options`` (``--option``) go to the plugin as to enhance's; without them the plugin runs in its declared
    restoring mode (``PostProcessor.restoring_options``, e.g. gan-enhance.strength=1), so a learned plugin
    whose default mode leaves frames without side info as decoded is timed restoring, not as the identity.
    The result's ``options`` and ``options_from`` (``--option``, ``restoring_options`` or ``defaults``) say
    which ran, ``frames_with_side_info`` how many frames had a payload."""
    if frames is not None and frames < 1:
        raise BenchError(f"--frames must be at least 1, got {frames}")
    if repeat < 1:
        raise BenchError(f"--repeat must be at least 1, got {repeat}")
    with media.InputFile(input, fps) as inp:
        if not inp.timed:
            raise UsageError(f"{input} is a raw stream without timing; give --fps")
    chain = load_postprocessors([] if plugin == "none" else [plugin], device)
    options, options_from = restoring_options(chain, options)
    settings = media.EncoderSettings(codec="libx265", preset=preset, crf=crf)
    genpost, baseline, peak_rss, peak_gpu = [], [], 0.0, None
    scoped = True
    with tempfile.TemporaryDirectory(prefix="genpost-bench-") as tmp:
        for i in range(repeat):
            progress(f"run {i + 1}/{repeat}: baseline")
            baseline.append(_baseline_run(input, os.path.join(tmp, "baseline.mkv"), settings, fps, frames))
            progress(f"run {i + 1}/{repeat}: genpost")
            scoped = _reset_peak_rss() and scoped
            _gpu(device, reset=True)
            genpost.append(_genpost_run(input, os.path.join(tmp, "genpost.mkv"), settings, chain, fps, frames, options))
            peak_rss = max(peak_rss, _peak_rss_mb())
            gpu = _gpu(device, reset=False)
            peak_gpu = gpu if peak_gpu is None else max(peak_gpu, gpu or 0.0)
    best, base = min(genpost, key=lambda r: r["wall"]), min(baseline, key=lambda r: r["wall"])
    n = best["frames"]
    if n == 0:
        raise PipelineError(f"{input}: no frames decoded")
    if base["frames"] != n:
        raise PipelineError(f"baseline decoded {base['frames']} frames, genpost {n}")
    result = {
        "input": str(input),
        "plugin": plugin,
        "options": options,
        "options_from": options_from,
        "device": device,
        "frames": n,
        "frames_with_side_info": best["with_side_info"],
        "fps": n / best["wall"],
        "baseline_fps": n / base["wall"],
        "overhead_ratio": best["wall"] / base["wall"],
        # CPU seconds of all threads: less sensitive than wall time to other jobs on the machine
        "cpu_overhead_ratio": min(r["cpu"] for r in genpost) / min(r["cpu"] for r in baseline),
        "stages_ms": {k: 1000 * v / n for k, v in best["stages"].items()},
        "peak_rss_mb": round(peak_rss, 1),
        "peak_rss_scope": "genpost runs" if scoped else "whole process",
        "encoder": {"codec": "libx265", "preset": preset, "crf": crf},
        "repeat": repeat,
        "versions": versions(),
    }
    if peak_gpu is not None:
        result["peak_gpu_mb"] = round(peak_gpu, 1)
    return result


def restoring_options(chain, options: dict[str, str] | None) -> tuple[dict[str, str], str]:
    """(the options bench runs the plugins with, where they come from): the user's ``--option`` values,
    else each plugin's declared restoring mode, else none."""
    if options:
        return dict(options), "--option"
    forced = {f"{p.name}.{key}": value for p in chain for key, value in p.restoring_options.items()}
    return forced, ("restoring_options" if forced else "defaults")


def versions() -> dict[str, str]:
    try:
        genpost = metadata.version("genpost")
    except metadata.PackageNotFoundError:
        genpost = "unknown"
    return {
        "genpost": genpost,
        **media.versions(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_count": str(os.cpu_count()),
        "machine": platform.machine(),
    }
