#!/usr/bin/env python3
"""Damaged-file fuzz of ``genpost enhance``: real streams, corrupted the ways storage and links do it
(tests/robustness runs a fast slice of each category).

Streams: the carphone clip coded by x265 (keyint 8) in MKV, MP4 and MPEG-TS and raw .265, a VTM VVC stream
(.266), and the carphone y4m. Categories, each with --cases seeded cases per stream:

* picture_flips: 1-8 bit flips inside coded pictures, container intact (MKV, MP4, TS)
* byte_flips: 1-60 random bytes of the file changed anywhere past its first 10 %
* truncation: the file cut at a random point
* garbage: random bytes with the stream's extension

Each case runs ``pipeline.enhance`` (tolerant: the default) to ffv1. Outcomes: ``ok`` (every frame
out, damage counted), ``refused`` (a one-line MediaError/PipelineError, nothing written), ``crash`` (any
other exception), ``hang`` (over --timeout s). ``frames_lost`` counts, for picture_flips in MKV/MP4, frames
of the clean stream missing from the output; ``parser_merged`` the TS cases where FFmpeg's parser merged
two damaged pictures into one packet (reported as damage, not silent).

    python scripts/fuzz_media.py --cases 100
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from robustness import corrupt

from genpost import media
from genpost.jobs import pipeline

CARPHONE = ROOT / "tests" / "data" / "carphone_176x144_29.97.y4m"
VTM = ROOT / "tests" / "data" / "vvc" / "carphone_176x144_29.97_ra_qp32.266"


class Hang(Exception):
    pass


def streams(folder: Path) -> dict[str, Path]:
    import subprocess

    import imageio_ffmpeg

    out = {}
    mkv = folder / "x265.mkv"
    pipeline.encode(CARPHONE, mkv, media.EncoderSettings(qp=37, preset="fast", keyint=8))
    out["mkv"] = mkv
    for ext in ("mp4", "ts"):
        out[ext] = folder / f"x265.{ext}"
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(mkv), "-c", "copy", str(out[ext])], check=True)
    out["265"] = folder / "x265.265"
    pipeline.encode(CARPHONE, out["265"], media.EncoderSettings(qp=37, preset="fast", keyint=8))
    out["266"], out["y4m"] = VTM, CARPHONE
    return out


def run_case(category: str, kind: str, clean: Path, seed: int, folder: Path, expected: int) -> tuple[str, int, int]:
    """(outcome, frames lost, parser merges) for one damaged file."""
    rng = random.Random(seed)
    bad = folder / f"bad.{kind}"
    if category == "picture_flips":
        corrupt.flip_in_packets(clean, bad, rng.randint(1, 8), seed)
    elif category == "byte_flips":
        corrupt.flip_bytes(clean, bad, rng.randint(1, 60), seed, start=0.1)
    elif category == "truncation":
        corrupt.truncate(clean, bad, rng.uniform(0.0, 0.999))
    else:
        corrupt.garbage(bad, rng.randint(0, 20000), seed)
    out = folder / "out.mkv"
    fps = "30000/1001" if kind in ("265", "266") else None
    try:
        report = pipeline.enhance(bad, out, media.EncoderSettings(codec="ffv1"), plugins=["none"], fps=fps)
    except (media.MediaError, pipeline.PipelineError):
        if out.exists():
            raise AssertionError("a refused job left an output") from None
        return "refused", 0, 0
    with media.InputFile(out) as inp:
        written = sum(1 for _ in inp.frames())
    if written != report.frames:
        raise AssertionError(f"report says {report.frames} frames, the output holds {written}")
    out.unlink()
    lost = merged = 0
    if category == "picture_flips" and written != expected:
        if kind == "ts" and report.decode["frames"]:
            merged = 1
        else:
            lost = expected - written
    return "ok", lost, merged


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100, help="cases per category and stream")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--only", nargs="*", help="categories to run (default: all)")
    args = ap.parse_args()
    signal.signal(signal.SIGALRM, lambda s, f: (_ for _ in ()).throw(Hang()))
    plan = {
        "picture_flips": ["mkv", "mp4", "ts"],
        "byte_flips": ["mkv", "mp4", "ts", "265", "266", "y4m"],
        "truncation": ["mkv", "mp4", "ts", "265", "266", "y4m"],
        "garbage": ["mkv", "mp4", "ts", "265", "266", "y4m"],
    }
    plan = {c: k for c, k in plan.items() if not args.only or c in args.only}
    results: dict[str, Counter] = defaultdict(Counter)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        clean = streams(folder)
        expected = 33
        for category, kinds in plan.items():
            for kind in kinds:
                for seed in range(args.cases):
                    signal.setitimer(signal.ITIMER_REAL, args.timeout)
                    try:
                        outcome, lost, merged = run_case(category, kind, clean[kind], seed, folder, expected)
                        if lost or merged:
                            print(f"frames lost: {category} {kind} seed {seed}: {lost} (merged {merged})", file=sys.stderr)
                        results[category][outcome] += 1
                        results[category]["frames_lost"] += lost
                        results[category]["parser_merged"] += merged
                    except Hang:
                        results[category]["hang"] += 1
                        print(f"hang {category} {kind} seed {seed}", file=sys.stderr)
                    except Exception as exc:
                        results[category]["crash"] += 1
                        print(f"crash {category} {kind} seed {seed}: {type(exc).__name__}: {exc}", file=sys.stderr)
                    finally:
                        signal.setitimer(signal.ITIMER_REAL, 0)
                    results[category]["cases"] += 1
    summary = {c: {k: r.get(k, 0) for k in ("cases", "ok", "refused", "crash", "hang", "frames_lost", "parser_merged")} for c, r in results.items()}
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary, indent=1))
    bad = sum(r.get("crash", 0) + r.get("hang", 0) + r.get("frames_lost", 0) for r in results.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
