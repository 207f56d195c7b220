#!/usr/bin/env python3
"""Peak memory of ``genpost enhance`` against clip length: streaming means it stays flat.

Makes 320x240 clips at 30000/1001 with 48 kHz audio of each length (ffmpeg testsrc2 + sine, x264), runs
``genpost enhance`` on each in a fresh process (decode -> restore chain -> ffv1 encode -> mux; also with
``--resume``), and reports the child's peak resident set size. Prints JSON:

    python scripts/bench_memory.py --frames 300 1200 4800
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mib(cmd: list[str]) -> tuple[float, float, int]:
    """(peak RSS in MiB, seconds, exit code) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024, time.perf_counter() - start, os.waitstatus_to_exitcode(status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[300, 1200, 4800])
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--plugin", default="wiener", help="post-processor to run on every frame (no side info)")
    args = ap.parse_args()
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.frames:
            clip = Path(tmp) / f"clip{n}.mp4"
            subprocess.run(
                [ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={args.size}:rate=30000/1001",
                 "-f", "lavfi", "-i", "sine=sample_rate=48000", "-frames:v", str(n), "-t", str(n * 1001 / 30000),
                 "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)],
                check=True,
            )  # fmt: skip
            for resume in (False, True):
                out = Path(tmp) / f"out{n}{resume}.mkv"
                cmd = [sys.executable, "-m", "genpost.cli", "enhance", str(clip), "-o", str(out), "--plugin", args.plugin,
                       "--codec", "ffv1", "-q"] + (["--resume"] if resume else [])  # fmt: skip
                rss, seconds, code = peak_rss_mib(cmd)
                rows.append({"frames": n, "resume": resume, "peak_rss_mib": round(rss, 1), "seconds": round(seconds, 2), "exit": code})
                out.unlink(missing_ok=True)
    growth = {}
    for resume in (False, True):
        r = [row for row in rows if row["resume"] is resume]
        growth["resume" if resume else "one_pass"] = round(r[-1]["peak_rss_mib"] - r[0]["peak_rss_mib"], 1)
    print(json.dumps({"size": args.size, "plugin": args.plugin, "runs": rows, "rss_growth_mib_first_to_last": growth}, indent=1))
    return 0 if all(row["exit"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
