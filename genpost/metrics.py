"""Objective metrics on genpost Frames, computed at the source's bit depth (peak = 2^bitdepth - 1)."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from .types import Frame, to_bit_depth


def sse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.int64) - b.astype(np.int64)
    return float(np.einsum("ij,ij->", d, d))


def psnr(mse: float, bit_depth: int) -> float:
    peak = float((1 << bit_depth) - 1)
    return 100.0 if mse <= 0 else 10.0 * math.log10(peak * peak / mse)


def frame_mse(reference: Frame, test: Frame) -> tuple[float, float, float]:
    """Per-plane MSE after bringing ``test`` to the reference's bit depth (documented rounding there)."""
    test = to_bit_depth(test, reference.bit_depth)
    return tuple(sse(r, t) / r.size for r, t in zip(reference.planes, test.planes))


def sequence_psnr(references: Iterable[Frame], tests: Iterable[Frame]) -> dict[str, float]:
    """Mean of per-frame PSNR per plane (the VTM/HM log convention), plus the frame count."""
    sums = [0.0, 0.0, 0.0]
    n = 0
    depth = 8
    for ref, test in zip(references, tests, strict=True):
        depth = ref.bit_depth
        for i, m in enumerate(frame_mse(ref, test)):
            sums[i] += psnr(m, depth)
        n += 1
    if n == 0:
        raise ValueError("no frames to compare")
    return {"psnr_y": sums[0] / n, "psnr_u": sums[1] / n, "psnr_v": sums[2] / n, "frames": n}


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson monotone slopes (the piecewise cubic Hermite used by JVET's BD-rate sheets)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    m = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    m[0] = _end_slope(h[0], h[1] if len(h) > 1 else h[0], delta[0], delta[1] if len(delta) > 1 else delta[0])
    m[-1] = _end_slope(h[-1], h[-2] if len(h) > 1 else h[-1], delta[-1], delta[-2] if len(delta) > 1 else delta[-1])
    return m


def _end_slope(h0, h1, d0, d1) -> float:
    m = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(m) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(m) > abs(3 * d0):
        return 3 * d0
    return m


def _pchip(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    order = np.argsort(x)
    x, y = x[order], y[order]
    m = _pchip_slopes(x, y)
    k = np.clip(np.searchsorted(x, at) - 1, 0, len(x) - 2)
    h = x[k + 1] - x[k]
    t = (at - x[k]) / h
    h00, h10, h01, h11 = 2 * t**3 - 3 * t**2 + 1, t**3 - 2 * t**2 + t, -2 * t**3 + 3 * t**2, t**3 - t**2
    return h00 * y[k] + h10 * h * m[k] + h01 * y[k + 1] + h11 * h * m[k + 1]


def bd_rate(anchor_kbps, anchor_quality, test_kbps, test_quality, samples: int = 2001) -> float:
    """Bjontegaard delta rate in percent (negative = fewer bits for the same quality).

    log10(rate) is interpolated as a function of quality with piecewise cubic Hermite (PCHIP) curves and
    averaged over the overlapping quality interval, as in JVET-style BD-rate spreadsheets.
    """
    qa, qt = np.asarray(anchor_quality, float), np.asarray(test_quality, float)
    ra, rt = np.log10(np.asarray(anchor_kbps, float)), np.log10(np.asarray(test_kbps, float))
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if hi <= lo:
        return float("nan")
    grid = np.linspace(lo, hi, samples)
    diff = np.trapezoid(_pchip(qt, rt, grid) - _pchip(qa, ra, grid), grid) / (hi - lo)
    return float((10**diff - 1) * 100)
