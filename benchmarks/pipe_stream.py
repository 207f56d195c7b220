"""Benchmark: genpost pipe between two real ffmpeg processes; throughput and peak memory vs clip length.

    python benchmarks/pipe_stream.py [--frames 99,396] [--plugin wiener] [--json out.json]

For each length the carphone clip is looped by the upstream ffmpeg (``-stream_loop``), piped through
``genpost pipe`` and into ``ffmpeg -f null``. The genpost process's peak RSS comes from ``os.wait4``
(its own rusage, not the ffmpegs'). Target: peak RSS does not grow with the number of frames
(``rss_growth_mb`` stays within a few MB while the clip gets 4x longer).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
from _report import report

CLIP = Path(__file__).resolve().parent.parent / "tests" / "data" / "carphone_176x144_29.97.y4m"
CLIP_FRAMES = 33


def run_once(frames: int, plugin: str) -> dict:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    loops = -(-frames // CLIP_FRAMES) - 1
    up = subprocess.Popen(
        [ffmpeg, "-v", "error", "-stream_loop", str(loops), "-i", str(CLIP), "-frames:v", str(frames),
         "-f", "yuv4mpegpipe", "-"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    start = time.perf_counter()
    mid = subprocess.Popen(
        [sys.executable, "-m", "genpost.cli", "pipe", "--plugin", plugin, "-q"],
        stdin=up.stdout, stdout=subprocess.PIPE,
    )  # fmt: skip
    down = subprocess.Popen([ffmpeg, "-v", "error", "-f", "yuv4mpegpipe", "-i", "-", "-f", "null", "-"], stdin=mid.stdout)
    up.stdout.close()
    mid.stdout.close()
    _, status, usage = os.wait4(mid.pid, 0)
    mid.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if up.wait() or down.wait() or mid.returncode:
        raise SystemExit(f"pipeline failed (ffmpeg {up.returncode}, genpost {mid.returncode}, ffmpeg {down.returncode})")
    return {
        "frames": frames,
        "seconds": round(seconds, 3),
        "fps": round(frames / seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="99,396", help="comma-separated clip lengths")
    parser.add_argument("--plugin", default="wiener")
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args()
    runs = [run_once(int(n), args.plugin) for n in args.frames.split(",")]
    result = {
        "benchmark": "pipe_stream",
        "plugin": args.plugin,
        "clip": f"{CLIP.name} looped",
        "runs": runs,
        "rss_growth_mb": round(runs[-1]["peak_rss_mb"] - runs[0]["peak_rss_mb"], 1),
        "cpu_count": os.cpu_count(),
    }
    report(result, args.json, indent=2)


if __name__ == "__main__":
    main()
