"""What `genpost encode --workers N` costs against a single-pass x265 encode: size and PSNR-Y per CRF for
the single pass and for closed-GOP chunks of each --chunk-frames, and the BD-rate (PCHIP, PSNR-Y) of
each chunking against the single pass. Base only (no plugin): side info is analysed per chunk either way.

    python benchmarks/chunked_encode.py SOURCE [--crf 22,27,32,37] [--chunk-frames 32,64] [--workers 2]
        [--preset fast] [--keyint N] [--json OUT.json]

The numbers in docs/scaling.md come from this script (the command is written beside them).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from _report import report

from genpost import media
from genpost.eval import metrics
from genpost.jobs import pipeline
from genpost.jobs.distributed import session


def measure(source, output, crf: float, preset: str, workers: int, chunk_frames: int | None, keyint: int | None) -> dict:
    settings = media.EncoderSettings(crf=crf, preset=preset, keyint=keyint)
    start = time.perf_counter()
    schedule = pipeline.Schedule(workers=workers, chunk_frames=chunk_frames)
    report = pipeline.encode(source, output, settings, plugins=[], carriage="sei", schedule=schedule)
    seconds = time.perf_counter() - start
    with media.InputFile(source) as ref, media.InputFile(output, fps=ref.info.rate) as test:
        psnr = metrics.sequence_psnr(ref.frames(), test.frames())
        rate = ref.info.rate
    kbps = os.path.getsize(output) * 8 / (report.frames / rate) / 1000
    return {"crf": crf, "kbps": round(float(kbps), 3), "psnr_y": round(psnr["psnr_y"], 4), "seconds": round(seconds, 2),
            "frames": report.frames, "chunks": report.workers.get("chunks", 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("--crf", default="22,27,32,37")
    ap.add_argument("--chunk-frames", default="32,64")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--keyint", type=int, default=None, help="x265 keyint for both sides (default: x265's, 250)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()
    crfs = [float(c) for c in args.crf.split(",")]
    sizes = [int(c) for c in args.chunk_frames.split(",")]
    result = {"source": args.source, "preset": args.preset, "keyint": args.keyint, "workers": args.workers, "single_pass": [], "chunked": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for crf in crfs:  # raw .265: only video bits are counted
            result["single_pass"].append(measure(args.source, f"{tmp}/one.265", crf, args.preset, 1, None, args.keyint))
        with session(args.workers):
            for size in sizes:
                rows = [measure(args.source, f"{tmp}/c{size}.265", crf, args.preset, args.workers, size, args.keyint) for crf in crfs]
                one = result["single_pass"]
                bd = metrics.bd_rate([r["kbps"] for r in one], [r["psnr_y"] for r in one],
                                     [r["kbps"] for r in rows], [r["psnr_y"] for r in rows])  # fmt: skip
                result["chunked"][str(size)] = {"rows": rows, "bd_rate_psnr_y_percent": round(bd, 2)}
    report(result, args.json_out, indent=2)


if __name__ == "__main__":
    main()
