"""Content adaptation on vs off for one plugin on one clip at one QP (x265 medium, the eval's preset):
per-plane PSNR change vs the base decode, side-info bits (update + frame records, SEI framing counted),
the update's bytes and J = SSE + lambda * bits, through genpost's real encode and enhance.

    python benchmarks/adapt_onoff.py tests/data/carphone_176x144_29.97.y4m residual-diffusion --qp 37
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from genpost import media, sideinfo
from genpost.jobs import pipeline


def _frames(path) -> list:
    with media.InputFile(path) as f:
        return list(f.frames())


def _sse(a_frames, b_frames) -> np.ndarray:
    return np.sum([[float(((x.astype(np.float64) - y) ** 2).sum()) for x, y in zip(a.planes, b.planes)]
                   for a, b in zip(a_frames, b_frames)], 0)  # fmt: skip


def run(source: Path, plugin: str, qp: int, mode: str, folder: Path, extra: dict) -> dict:
    coded, restored = folder / f"{mode}.mkv", folder / f"{mode}.y4m"
    options = {f"{plugin}.adapt": mode, **{f"{plugin}.{k}": v for k, v in extra.items()}}
    start = time.monotonic()
    pipeline.encode(source, coded, media.EncoderSettings(qp=qp, preset="medium"), plugins=[plugin], options=options)
    seconds = time.monotonic() - start
    pipeline.enhance(coded, restored, media.EncoderSettings(codec="y4m"), plugins=[plugin])
    with media.InputFile(coded) as f:
        records = list(pipeline.collect_side_info(f).records())
    bits = 8 * sum(len(r.payload) + sideinfo.record_overhead_bytes(r.format_id, "sei") for r in records)
    update = [len(r.payload) for r in records if r.format_id == sideinfo.update_format(f"{plugin}/1")]
    src, base, out = _frames(source), _frames(coded), _frames(restored)
    n = len(base)
    sse, sse_base = _sse(src[:n], out), _sse(src[:n], base)
    samples = np.array([src[0].y.size, src[0].u.size, src[0].v.size]) * n
    gain = 10 * np.log10(sse_base / np.maximum(sse, 1e-9))  # PSNR change of the whole clip, per plane
    lam = 0.57 * 2 ** ((qp - 12) / 3)
    return {"mode": mode, "frames": n, "dPSNR_YUV_dB": [round(float(g), 3) for g in gain],
            "mse_base": [round(float(v), 3) for v in sse_base / samples], "side_info_bits": bits,
            "update_bytes": update, "J_minus_base_J": round(float(sse.sum() + lam * bits - sse_base.sum()), 1),
            "encode_seconds": round(seconds, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("plugin")
    ap.add_argument("--qp", type=int, default=37)
    ap.add_argument("--modes", default="off,auto")
    ap.add_argument("--option", action="append", default=[], help="KEY=VALUE for the plugin")
    args = ap.parse_args()
    extra = dict(o.split("=", 1) for o in args.option)
    with tempfile.TemporaryDirectory() as tmp:
        out = [run(Path(args.source), args.plugin, args.qp, m, Path(tmp), extra) for m in args.modes.split(",")]
    print(json.dumps({"source": args.source, "plugin": args.plugin, "qp": args.qp, "runs": out}, indent=1))


if __name__ == "__main__":
    main()
