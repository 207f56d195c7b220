"""genpost bench --workers 1,2,...: enhance's fps at each worker count on this machine, and what the
measured costs predict for a cluster (docs/scaling.md explains the model).

``--workers 1`` is the plain single-process path (no Ray), the honest baseline. Ray is started once before
the timed runs (its start is reported, not counted); each run with N > 1 starts N fresh actors, so their
plugin setup is counted, as in a real job. The model: the driver decodes every frame and ships it to a
worker, so a job runs at min(N / worker cost, driver decode rate, link bandwidth / bytes per frame).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from fractions import Fraction

from .. import media
from ..errors import PipelineError
from ..jobs.enhance import enhance
from ..jobs.schedule import Schedule
from .bench import BenchError

LINK_GBPS = (1.0, 10.0)  # links the cluster prediction is written for
PREDICT_NODES = (1, 2, 4, 8, 16, 32, 64)


def bench_workers(input, plugin: str, counts: str, fps: Fraction | None = None, preset: str = "medium",
                  crf: float = 18.0, chunk_frames: int | None = None, progress=lambda message: None) -> dict:  # fmt: skip
    try:
        counts = [int(n) for n in str(counts).split(",")]
        if min(counts) < 1:
            raise ValueError
    except ValueError:
        raise BenchError(f"--workers wants comma-separated counts of at least 1, e.g. 1,2; got {counts!r}") from None
    if max(counts) > 1:
        from ..jobs.distributed import require_ray

        require_ray()
    plugins = [] if plugin == "none" else [plugin]
    settings = media.EncoderSettings(codec="libx265", crf=crf, preset=preset)
    decode_s, frames = _decode_seconds(input, fps)
    result = {"input": str(input), "plugin": plugin, "frames": frames, "cpus": os.cpu_count(), "preset": preset,
              "crf": crf, "chunk_frames": chunk_frames, "driver_decode_fps": round(frames / decode_s, 2), "runs": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, _ray_if(max(counts)) as ray_start_s:
        result["ray_start_s"] = ray_start_s
        for n in counts:
            progress(f"bench: {n} worker{'s' * (n > 1)}")
            start = time.perf_counter()
            report = enhance(input, os.path.join(tmp, f"out{n}.mkv"), settings, plugins=plugins or ["none"], fps=fps,
                             schedule=Schedule(workers=n, chunk_frames=chunk_frames))  # fmt: skip
            seconds = time.perf_counter() - start
            row = {"workers": n, "seconds": round(seconds, 3), "fps": round(report.frames / seconds, 3)}
            w = report.workers
            if w:
                row.update(chunks=w["chunks"], worker_processes=w["worker_processes"],
                           ms_per_frame_worker=round(w["ms_per_frame_worker"], 2),
                           sent_bytes_per_frame=round(w["sent_bytes"] / w["frames"]),
                           returned_bytes_per_frame=round(w["returned_bytes"] / w["frames"]))  # fmt: skip
            result["runs"].append(row)
    base = result["runs"][0]["fps"]
    for row in result["runs"]:
        row["speedup"] = round(row["fps"] / base, 3)
    result["cluster_model"] = model(result)
    return result


def summary(result: dict) -> str:
    return "\n".join(f"{r['workers']} workers: {r['fps']:.2f} fps ({r['speedup']:.2f}x)" for r in result["runs"])


def model(result: dict) -> dict | None:
    """Predicted fps on N one-worker nodes from the measured per-frame worker cost, driver decode rate and
    transfer size (the bottleneck named for each N)."""
    chunked = [r for r in result["runs"] if "ms_per_frame_worker" in r]
    if not chunked:
        return None
    r = max(chunked, key=lambda row: row["workers"])
    worker_fps = 1000 / r["ms_per_frame_worker"]
    per_frame = r["sent_bytes_per_frame"] + r["returned_bytes_per_frame"]
    out = {"worker_fps": round(worker_fps, 3), "bytes_per_frame": per_frame, "predicted": {}}
    for gbps in LINK_GBPS:
        link_fps = gbps * 1e9 / 8 / per_frame
        rows = {}
        for n in PREDICT_NODES:
            limits = {"workers": n * worker_fps, "driver_decode": result["driver_decode_fps"], "link": link_fps}
            bound = min(limits, key=limits.get)
            rows[str(n)] = {"fps": round(limits[bound], 2), "bound_by": bound}
        out["predicted"][f"{gbps:g}_gbps"] = rows
    return out


def _decode_seconds(input, fps) -> tuple[float, int]:
    """The driver's own work per frame: decode (what every worker count shares)."""
    start = time.perf_counter()
    with media.InputFile(input, fps) as inp:
        inp.max_errors = None
        frames = sum(1 for _ in inp.frames())
    if not frames:
        raise PipelineError(f"{input} has no frames")
    return time.perf_counter() - start, frames


@contextlib.contextmanager
def _ray_if(workers: int):
    """One Ray session for all timed runs when any has N > 1; yields its start time (None without)."""
    if workers == 1:
        yield None
        return
    from ..jobs.distributed import session

    start = time.perf_counter()
    with session(workers):
        yield round(time.perf_counter() - start, 2)
