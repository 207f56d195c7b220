"""4:2:0 planes <-> the network's packed half-resolution layout (numpy only; shared by training and
inference so both see exactly the same input)."""

from __future__ import annotations

import numpy as np

QP_REF, QP_SPAN = 27.0, 15.0  # the QP plane holds (qp - 27) / 15: 0 at QP 27, 1 at QP 42


def qp_value(qp: float) -> float:
    return (float(qp) - QP_REF) / QP_SPAN


def pack(y: np.ndarray, u: np.ndarray, v: np.ndarray, max_value: int, qp: float) -> np.ndarray:
    """(7, h, w) float32: luma's four 2x2 phases, U, V (each / max_value) and the QP plane, where (h, w)
    is the chroma size; luma of odd size is edge-padded to twice the chroma size."""
    h, w = u.shape
    if y.shape != (2 * h, 2 * w):
        y = np.pad(y, ((0, 2 * h - y.shape[0]), (0, 2 * w - y.shape[1])), mode="edge")
    out = np.empty((7, h, w), np.float32)
    scale = np.float32(1.0 / max_value)
    out[0] = y[0::2, 0::2] * scale
    out[1] = y[0::2, 1::2] * scale
    out[2] = y[1::2, 0::2] * scale
    out[3] = y[1::2, 1::2] * scale
    out[4] = u * scale
    out[5] = v * scale
    out[6] = qp_value(qp)
    return out


def unpack(x: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(6, h, w) float -> luma (height, width), U, V (h, w); inverse of ``pack`` without the QP plane."""
    h, w = x.shape[1:]
    y = np.empty((2 * h, 2 * w), x.dtype)
    y[0::2, 0::2], y[0::2, 1::2], y[1::2, 0::2], y[1::2, 1::2] = x[0], x[1], x[2], x[3]
    return y[:height, :width], x[4], x[5]
