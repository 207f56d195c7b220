"""Numpy-only layout shared by training and the plugin: the latent grid, space-to-depth for the latent
encoder, nearest upsampling of the latent, and the diffusion schedule (no torch here).

Everything works on genpost's packed 4:2:0 (``genpost.learned.modeling.pack``): six planes at chroma resolution.
One latent cell covers ``CELL`` x ``CELL`` chroma samples = 8 x 8 luma samples (the 1/8 grid).
"""

from __future__ import annotations

import numpy as np

from genpost.learned.modeling import qp_value

CELL = 4  # chroma samples per latent cell side (8 luma samples)
LATENT = 4  # latent channels
RS = 20.0  # the residual (source - decode, full range = 1) is multiplied by RS in the diffusion space
ENC_IN = 12 * CELL * CELL + 1  # space-to-depth of [residual * RS, decoded - 0.5] + a QP plane
DEC_IN = 6 + 6 + 1 + 1 + LATENT + 1  # x_t, decoded, QP, t, upsampled latent, latent-present flag


def grid(height: int, width: int) -> tuple[int, int]:
    """Latent (rows, cols) for a packed (chroma-resolution) size."""
    return -(-height // CELL), -(-width // CELL)


def space_to_depth(x: np.ndarray) -> np.ndarray:
    """(C, h, w) -> (C * CELL^2, rows, cols), edge-padded to whole cells (channel = c * 16 + i * 4 + j,
    the order of torch's pixel_unshuffle)."""
    c, h, w = x.shape
    rows, cols = grid(h, w)
    x = np.pad(x, ((0, 0), (0, rows * CELL - h), (0, cols * CELL - w)), mode="edge")
    x = x.reshape(c, rows, CELL, cols, CELL).transpose(0, 2, 4, 1, 3)
    return np.ascontiguousarray(x.reshape(c * CELL * CELL, rows, cols))


def encoder_input(source: np.ndarray, decoded: np.ndarray, qp: float) -> np.ndarray:
    """(ENC_IN, rows, cols) from packed source (6, h, w) and decoded (6+, h, w)."""
    s2d = space_to_depth(np.concatenate([(source[:6] - decoded[:6]) * np.float32(RS), decoded[:6] - np.float32(0.5)]))
    return np.concatenate([s2d, np.full((1, *s2d.shape[1:]), qp_value(qp), np.float32)])


def upsample(latent: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest upsampling of a (LATENT, rows, cols) latent to the packed size (height, width)."""
    return np.repeat(np.repeat(latent, CELL, 1), CELL, 2)[:, :height, :width]


def alpha_sigma(t: float) -> tuple[float, float]:
    """Cosine schedule: x_t = a * x0 + s * eps with a = cos(pi t / 2), s = sin(pi t / 2); t = 1 is pure noise."""
    return float(np.cos(np.pi * t / 2)), float(np.sin(np.pi * t / 2))


def lagrangian8(qp: float) -> float:
    """HM's lambda at 8 bits (what genpost's Context.lagrangian gives for an 8-bit stream)."""
    return 0.57 * 2.0 ** ((float(qp) - 12.0) / 3.0)
