"""Benchmark: the encode time content adaptation adds, per frame (target: <= 2 s per 720p frame, 2 cores).

    python benchmarks/adapt_time.py SOURCE.y4m [--plugin gan-enhance] [--qp 37] [--frames N] [--json out.json]

Runs ``genpost encode`` twice on the same source, plugin and QP, once with ``PLUGIN.adapt=off`` and once
with the default (``auto``), and reports wall seconds per frame for each, the difference (the adaptation's
cost: the period pass, fine-tuning, candidate measurement, and restoring with the adapted network), and the
update bytes the RD choice sent.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _report import report

from genpost import media, sideinfo
from genpost.jobs import pipeline


def encode(source: Path, plugin: str, qp: int, mode: str, folder: Path) -> dict:
    out = folder / f"{mode}.mkv"
    start = time.monotonic()
    report = pipeline.encode(source, out, media.EncoderSettings(qp=qp), plugins=[plugin], options={f"{plugin}.adapt": mode})
    wall = time.monotonic() - start
    return {
        "frames": report.frames,
        "seconds": round(wall, 2),
        "seconds_per_frame": round(wall / report.frames, 3),
        "update_bytes": sum(n for fid, n in report.side_info_bytes.items() if sideinfo.base_format(fid) != fid),
        "side_info_bytes": report.side_info_bytes,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--plugin", default="gan-enhance")
    ap.add_argument("--qp", type=int, default=37)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        runs = {mode: encode(args.source, args.plugin, args.qp, mode, Path(tmp)) for mode in ("off", "auto")}
    frames = runs["auto"]["frames"]
    result = {
        "source": str(args.source),
        "plugin": args.plugin,
        "qp": args.qp,
        "runs": runs,
        "adaptation_seconds_per_frame": round((runs["auto"]["seconds"] - runs["off"]["seconds"]) / frames, 3),
    }
    report(result, args.json)


if __name__ == "__main__":
    main()
