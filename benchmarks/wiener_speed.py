"""Benchmark: wiener's decoder restore and encoder analysis per 720p frame, 8- and 10-bit, on one core.

    python benchmarks/wiener_speed.py [--frames 6] [--qp 37] [--json out.json]

The first frames of ``samples/bbb_wiener.mkv`` (1280x720) are the source; they are coded again by
x265 (PyAV, preset medium) at ``--qp``, 8- and 10-bit, and decoded. ``analyze`` runs on every
(source, decode) pair with no previous payload (the full fit), ``restore`` on its payload. BLAS and
OpenMP are held to one thread before numpy loads. Reported per bit depth: median wall and CPU
(``time.thread_time``) milliseconds per frame, the restore fps they imply, and payload bytes. CPU time
is the steadier figure on a shared machine. Targets (issue 19): restore >= 30 fps, analyze <= 1 s.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _report import report  # noqa: E402

from genpost import Context, media  # noqa: E402
from genpost.builtins.wiener import WienerFilter  # noqa: E402
from genpost.jobs import pipeline  # noqa: E402
from genpost.types import to_bit_depth  # noqa: E402

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "bbb_wiener.mkv"


def _timed(fn):
    w, c = time.perf_counter(), time.thread_time()
    out = fn()
    return out, 1000 * (time.perf_counter() - w), 1000 * (time.thread_time() - c)


def run(frames: int, qp: int) -> dict:
    result = {"frames": frames, "qp": qp, "source": SAMPLE.name}
    with tempfile.TemporaryDirectory() as tmp:
        src_y4m = os.path.join(tmp, "source.y4m")
        with media.InputFile(SAMPLE) as inp:
            info = inp.info
            out = media.OutputFile(src_y4m, info, media.EncoderSettings(codec="y4m"))
            for frame in itertools.islice(inp.frames(), frames):
                out.encode(frame)
            out.close()
        wf = WienerFilter()
        for depth in (8, 10):
            coded = os.path.join(tmp, f"coded{depth}.265")
            pipeline.encode(src_y4m, coded, media.EncoderSettings(qp=qp, bit_depth=depth))
            rows = {"analyze_wall_ms": [], "analyze_cpu_ms": [], "restore_wall_ms": [], "restore_cpu_ms": [],
                    "payload_bytes": []}
            with media.InputFile(src_y4m) as s, media.InputFile(coded) as d:
                for source, decoded in zip(s.frames(), d.frames()):
                    source = to_bit_depth(source, depth)
                    ctx = Context(stream=d.info, qp=qp)
                    payload, wall, cpu = _timed(lambda: wf.analyze(source, decoded, ctx))
                    rows["analyze_wall_ms"].append(wall)
                    rows["analyze_cpu_ms"].append(cpu)
                    rows["payload_bytes"].append(len(payload))
                    _, wall, cpu = _timed(lambda: wf.restore(decoded, payload, ctx))
                    rows["restore_wall_ms"].append(wall)
                    rows["restore_cpu_ms"].append(cpu)
            med = {k: round(statistics.median(v), 1) for k, v in rows.items()}
            med["restore_fps_cpu"] = round(1000 / med["restore_cpu_ms"], 1)
            med["restore_fps_wall"] = round(1000 / med["restore_wall_ms"], 1)
            result[f"{depth}bit"] = med
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--qp", type=int, default=37)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    report(run(args.frames, args.qp), args.json)


if __name__ == "__main__":
    main()
