"""Benchmark: CPU milliseconds per frame of genpost eval's numpy metrics (MS-SSIM, RGB, HaarPSI, FSIM), one core.

    python benchmarks/metric_speed.py [SOURCE.y4m] [--frames 4] [--json out.json] [--against before.json]

The source is the first ``--frames`` frames of the y4m, or a synthetic 1280x720 8-bit picture sequence
when none is given; the test pictures are the source blurred (3-tap luma) with seeded noise added, so two
runs (e.g. before and after a change, on two checkouts) see the same pairs. Reported per metric, as the
median over frames of ``time.thread_time``:

* ``one_shot``: ``metrics.ms_ssim``, ``perceptual.metric_rgb`` (both pictures), ``perceptual.haarpsi``,
  ``perceptual.fsim`` -- what a caller comparing one pair pays;
* ``cached_source``: what ``eval.measure.measure`` pays per test picture once the source frame's side is cached
  (``source_ms``: that side, paid once per source frame); a checkout without the per-metric source features
  is timed as its measure ran (the source RGB and HaarPSI/MS-SSIM computed again, FSIM's source half cached).

The metric values per frame are in ``values``; ``--against`` a previous run's JSON adds the largest
absolute difference per metric (``max_abs_diff``).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from _report import report  # noqa: E402

from genpost import media  # noqa: E402
from genpost.eval import metrics, perceptual  # noqa: E402
from genpost.types import Frame  # noqa: E402

SPLIT = hasattr(metrics, "ms_ssim_features")  # this checkout has the features + compare split


def synthetic(frames: int) -> list[Frame]:
    """Smooth gradients with seeded texture, 1280x720 4:2:0 8-bit."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:720, 0:1280]
    out = []
    for n in range(frames):
        y = 60 + 0.1 * xx + 0.08 * yy + 30 * np.sin((xx + 7 * n) / 23.0) * np.cos(yy / 17.0) + rng.normal(0, 6, xx.shape)
        u = 128 + 20 * np.sin(xx[::2, ::2] / 41.0 + n) + rng.normal(0, 3, (360, 640))
        v = 128 + 20 * np.cos(yy[::2, ::2] / 37.0) + rng.normal(0, 3, (360, 640))
        out.append(Frame(*(np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, u, v)), bit_depth=8))
    return out


def degrade(frame: Frame, seed: int) -> Frame:
    """The source blurred horizontally (1-2-1 luma) with seeded noise: a fixed stand-in for a decode."""
    rng = np.random.default_rng(seed)
    peak = (1 << frame.bit_depth) - 1
    y = frame.y.astype(np.int64)
    y[:, 1:-1] = (y[:, :-2] + 2 * y[:, 1:-1] + y[:, 2:] + 2) >> 2
    planes = [y, frame.u.astype(np.int64), frame.v.astype(np.int64)]
    noisy = [np.clip(p + rng.integers(-4, 5, p.shape), 0, peak).astype(frame.y.dtype) for p in planes]
    return Frame(*noisy, bit_depth=frame.bit_depth)


def _timed(fn):
    start = time.thread_time()
    out = fn()
    return out, 1000 * (time.thread_time() - start)


def one_shot(ref: Frame, test: Frame) -> tuple[dict, dict]:
    ms, values = {}, {}
    values["ms_ssim"], ms["ms_ssim"] = _timed(lambda: metrics.ms_ssim(ref.y, test.y, ref.bit_depth))
    (a, b), ms["rgb"] = _timed(lambda: (perceptual.metric_rgb(ref), perceptual.metric_rgb(test)))
    values["haarpsi"], ms["haarpsi"] = _timed(lambda: perceptual.haarpsi(a, b))
    values["fsim"], ms["fsim"] = _timed(lambda: perceptual.fsim(a, b))
    return ms, values


def source_side(ref: Frame):
    """The source frame's cached side, as eval.measure keeps it."""
    rgb = perceptual.metric_rgb(ref)
    if SPLIT:
        return metrics.ms_ssim_features(ref.y, ref.bit_depth), perceptual.picture_features(rgb)
    return rgb, perceptual.fsim_features(rgb)


def cached(ref: Frame, src, test: Frame) -> tuple[dict, dict]:
    ms, values = {}, {}
    if SPLIT:
        ssim_src, pic_src = src
        values["ms_ssim"], ms["ms_ssim"] = _timed(
            lambda: metrics.ms_ssim_compare(ssim_src, metrics.ms_ssim_features(test.y, ref.bit_depth))
        )
        rgb, ms["rgb"] = _timed(lambda: perceptual.metric_rgb(test))
        pic, ms["features"] = _timed(lambda: perceptual.picture_features(rgb))
        scores, ms["compare"] = _timed(lambda: perceptual.scores(pic_src, pic))
        values.update(scores)
        # the two metrics' test sides alone (picture_features shares their YIQ)
        ms["haarpsi"] = _timed(lambda: perceptual.haarpsi_compare(pic_src.haarpsi, perceptual.haarpsi_features(rgb)))[1]
        ms["fsim"] = _timed(lambda: perceptual.fsim_compare(pic_src.fsim, perceptual.fsim_features(rgb)))[1]
        ms["total"] = ms["ms_ssim"] + ms["rgb"] + ms["features"] + ms["compare"]
        return ms, values
    rgb_src, fsim_src = src
    values["ms_ssim"], ms["ms_ssim"] = _timed(lambda: metrics.ms_ssim(ref.y, test.y, ref.bit_depth))
    (a, b), ms["rgb"] = _timed(lambda: (perceptual.metric_rgb(ref), perceptual.metric_rgb(test)))
    values["haarpsi"], ms["haarpsi"] = _timed(lambda: perceptual.haarpsi(a, b))
    values["fsim"], ms["fsim"] = _timed(lambda: perceptual.fsim_compare(fsim_src, perceptual.fsim_features(b)))
    ms["total"] = ms["ms_ssim"] + ms["rgb"] + ms["haarpsi"] + ms["fsim"]
    return ms, values


def run(source: str | None, frames: int) -> dict:
    if source:
        with media.InputFile(source) as inp:
            refs = list(itertools.islice(inp.frames(), frames))
    else:
        refs = synthetic(frames)
    tests = [degrade(r, n) for n, r in enumerate(refs)]
    rows: dict[str, dict[str, list[float]]] = {"one_shot": {}, "cached_source": {}, "source_ms": {}}
    values: dict[str, dict[str, list[float]]] = {"one_shot": {}, "cached_source": {}}
    for ref, test in zip(refs, tests):
        src, src_ms = _timed(lambda: source_side(ref))
        rows["source_ms"].setdefault("all", []).append(src_ms)
        for kind, fn in (("one_shot", lambda: one_shot(ref, test)), ("cached_source", lambda: cached(ref, src, test))):
            ms, vals = fn()
            for k, v in ms.items():
                rows[kind].setdefault(k, []).append(v)
            for k, v in vals.items():
                values[kind].setdefault(k, []).append(float(v))
    med = {kind: {k: round(statistics.median(v), 1) for k, v in r.items()} for kind, r in rows.items()}
    med["one_shot"]["total"] = round(sum(med["one_shot"].values()), 1)
    first = refs[0]
    return {
        "source": source or "synthetic", "width": first.width, "height": first.height, "bit_depth": first.bit_depth,
        "frames": len(refs), "split_api": SPLIT, **med, "values": values,
    }  # fmt: skip


def max_abs_diff(result: dict, before: dict) -> dict:
    out = {}
    for kind, vals in result["values"].items():
        for k, v in vals.items():
            old = before["values"].get(kind, {}).get(k)
            if old is not None and len(old) == len(v):
                out[f"{kind}.{k}"] = float(np.max(np.abs(np.subtract(v, old))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", help="a y4m (default: synthetic 1280x720 pictures)")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--json", help="also write the result here")
    ap.add_argument("--against", help="a previous run's JSON: report the largest difference of each value")
    args = ap.parse_args()
    result = run(args.source, args.frames)
    if args.against:
        with open(args.against) as f:
            result["max_abs_diff"] = max_abs_diff(result, json.load(f))
    report(result, args.json)


if __name__ == "__main__":
    main()
