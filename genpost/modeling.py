"""What every learned post-processor needs between 4:2:0 planes and a network (numpy only, no torch):
the one place where samples become model tensors and back, and tiled inference with a halo.

The layout keeps 4:2:0 and any bit depth: luma is split into its four 2x2 phases so that all six
planes share the chroma grid, and samples are divided by ``2**bit_depth - 1`` (no RGB, no 8-bit
rounding). Training and inference both call ``pack``, so they see exactly the same input.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

QP_REF, QP_SPAN = 27.0, 15.0  # a QP plane holds (qp - 27) / 15: 0 at QP 27, 1 at QP 42
PLANES = 6  # packed channels without conditioning planes


def qp_value(qp: float) -> float:
    return (float(qp) - QP_REF) / QP_SPAN


def pack(y: np.ndarray, u: np.ndarray, v: np.ndarray, max_value: int, qp: float | None = None) -> np.ndarray:
    """(6, h, w) float32, or (7, h, w) with a constant QP plane: luma's four 2x2 phases, U, V (each
    / max_value), where (h, w) is the chroma size; luma of odd size is edge-padded to twice that."""
    h, w = u.shape
    if y.shape != (2 * h, 2 * w):
        y = np.pad(y, ((0, 2 * h - y.shape[0]), (0, 2 * w - y.shape[1])), mode="edge")
    out = np.empty((PLANES + (qp is not None), h, w), np.float32)
    scale = np.float32(1.0 / max_value)
    out[0] = y[0::2, 0::2] * scale
    out[1] = y[0::2, 1::2] * scale
    out[2] = y[1::2, 0::2] * scale
    out[3] = y[1::2, 1::2] * scale
    out[4] = u * scale
    out[5] = v * scale
    if qp is not None:
        out[6] = qp_value(qp)
    return out


def unpack(x: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(6, h, w) -> luma (height, width), U, V (h, w) in the same (float) scale; inverse of ``pack``."""
    h, w = x.shape[1:]
    y = np.empty((2 * h, 2 * w), x.dtype)
    y[0::2, 0::2], y[0::2, 1::2], y[1::2, 0::2], y[1::2, 1::2] = x[0], x[1], x[2], x[3]
    return y[:height, :width], x[4], x[5]


def to_samples(plane: np.ndarray, max_value: int, dtype) -> np.ndarray:
    """A float plane in 0..1 back to integer samples (rounded to nearest, clipped to the bit depth)."""
    return np.clip(np.rint(plane * max_value), 0, max_value).astype(dtype)


def run_tiled(
    run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, out_channels: int, tile: int, halo: int
) -> np.ndarray:
    """``run`` on (C, h, w) in ``tile``-sized pieces, each with ``halo`` samples of context on every side
    (clipped at the frame edge), keeping only each piece's centre. With ``halo`` at least the network's
    receptive radius the result equals running on the whole frame, while memory stays bounded."""
    _, h, w = x.shape
    if h <= tile + 2 * halo and w <= tile + 2 * halo:
        return run(np.ascontiguousarray(x))
    out = np.empty((out_channels, h, w), np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(y0 - halo, 0), max(x0 - halo, 0)
            yb, xb = min(y1 + halo, h), min(x1 + halo, w)
            r = run(np.ascontiguousarray(x[:, ya:yb, xa:xb]))
            out[:, y0:y1, x0:x1] = r[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out
