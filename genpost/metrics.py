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
