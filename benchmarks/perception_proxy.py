"""How well the encoder's perceptual distortion (the RD proxy of ``--target perception``) agrees with
ColorVideoVDP, the metric the perception axis is judged on.

    python benchmarks/perception_proxy.py CLIP.y4m [CLIP.y4m ...] [--frames 9] [--qp 32,37,42] [--json out.json]

Per clip and QP: the x265 base (preset medium) and candidate restorations of it a decoder could show --
gan-enhance's distortion head, its perception head and half of each, a 3x3 luma blur, and grain (fresh
seeded noise in every frame) -- each scored by SSE, by the proxy (SSE + PERCEPTION_MU x texture-energy
loss, ``genpost.learned.blocks``) and by CVVDP (JOD, ``genpost.eval.videometrics``). Agreement is Kendall's tau
between each distortion and -JOD over the candidates of one rung (1: the same order as CVVDP), averaged over
the rungs: the proxy is useful where its tau beats SSE's. Needs gan-enhance, torch and cvvdp.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from genpost import Context, media
from genpost.eval import perceptual, videometrics
from genpost.jobs import pipeline
from genpost.learned import blocks
from genpost.runner.loop import load_postprocessors


def _frames(path, count: int, fps=None):
    with media.InputFile(path, fps) as f:
        return [fr for _, fr in zip(range(count), f.frames())], f.info


def _blur(frame):
    y = frame.y.astype(np.float64)
    p = np.pad(y, 1, mode="edge")
    out = sum(p[i : i + y.shape[0], j : j + y.shape[1]] for i in range(3) for j in range(3)) / 9
    return frame.with_planes(np.rint(out).astype(frame.dtype), frame.u, frame.v)


def _grain(frame, seed: int):
    noise = np.random.default_rng(seed).normal(0, 2.0, frame.y.shape)
    y = np.clip(np.rint(frame.y + noise), 0, frame.max_value).astype(frame.dtype)
    return frame.with_planes(y, frame.u, frame.v)


def kendall(a: list[float], b: list[float]) -> float:
    pairs = list(itertools.combinations(range(len(a)), 2))
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    return float(s / len(pairs))


def rung(source, decoded, info, qp: int, gan, jod) -> dict:
    candidates = {"base": decoded}
    for name, strength, realism in (("gan distortion head", 1, 0), ("gan perception head", 1, 1), ("gan half", 0.5, 0.5)):
        ctx = Context(stream=info, qp=qp, options={"gan-enhance.strength": str(strength), "gan-enhance.realism": str(realism),
                                                    "gan-enhance.qp": str(qp)})  # fmt: skip
        candidates[name] = [gan.restore(f, None, ctx) for f in decoded]
    candidates["blur"] = [_blur(f) for f in decoded]
    candidates["grain"] = [_grain(f, k) for k, f in enumerate(decoded)]
    ref_rgb = [perceptual.metric_rgb(f, info.color) for f in source]
    rows = {}
    for name, frames in candidates.items():
        sse = sum(float(blocks.plane_distortion(s, f).sum()) for s, f in zip(source, frames))
        proxy = sum(float(blocks.plane_distortion(s, f, blocks.PERCEPTION_MU).sum()) for s, f in zip(source, frames))
        score = jod(ref_rgb, [perceptual.metric_rgb(f, info.color) for f in frames], float(info.rate or 25))
        rows[name] = {"sse": sse, "proxy": proxy, "jod": score}
    neg_jod = [-r["jod"] for r in rows.values()]
    return {"qp": qp, "candidates": rows, "tau_sse": kendall([r["sse"] for r in rows.values()], neg_jod),
            "tau_proxy": kendall([r["proxy"] for r in rows.values()], neg_jod)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="+")
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--qp", default="32,37,42")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    jod = videometrics.load()["cvvdp"]
    if not callable(jod):
        raise SystemExit(f"cvvdp: {jod}")
    (gan,) = load_postprocessors(["gan-enhance"])
    result = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in args.clips:
            source, info = _frames(clip, args.frames)
            for qp in (int(q) for q in args.qp.split(",")):
                coded = Path(tmp) / f"{Path(clip).stem}_{qp}.mkv"
                pipeline.encode(clip, coded, media.EncoderSettings(qp=qp, preset="medium"), plugins=[],
                                fps=info.rate or Fraction(25))
                decoded, _ = _frames(coded, args.frames)
                row = {"clip": Path(clip).name, **rung(source, decoded, info, qp, gan, jod)}
                print(json.dumps({k: row[k] for k in ("clip", "qp", "tau_sse", "tau_proxy")}), flush=True)
                result.append(row)
    summary = {"tau_sse": float(np.mean([r["tau_sse"] for r in result])),
               "tau_proxy": float(np.mean([r["tau_proxy"] for r in result])), "rungs": len(result)}  # fmt: skip
    print(json.dumps(summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rungs": result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
