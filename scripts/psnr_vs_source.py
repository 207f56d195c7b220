"""PSNR-Y/U/V of one or more decoded videos against a source, at the test's bit depth (source scaled up).

    python scripts/psnr_vs_source.py SOURCE.y4m TEST [TEST ...] [--fps 30000/1001]
"""

import argparse
import json
from fractions import Fraction

from genpost import media
from genpost.eval.metrics import sequence_psnr
from genpost.types import to_bit_depth

ap = argparse.ArgumentParser()
ap.add_argument("source")
ap.add_argument("tests", nargs="+")
ap.add_argument("--fps", default=None)
args = ap.parse_args()
fps = Fraction(args.fps) if args.fps else None
for test in args.tests:
    with media.InputFile(args.source) as s, media.InputFile(test, fps) as t:
        frames = list(t.frames())
        depth = frames[0].bit_depth
        refs = [to_bit_depth(f, depth) for f in s.frames()]
        print(json.dumps({"file": test, "frames": len(frames), **sequence_psnr(refs, frames)}))
