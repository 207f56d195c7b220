"""Per-block distortion for learned plugins' RD choices (numpy): SSE per plane and block, and the
texture-energy term that rewards keeping the source's local contrast."""

from __future__ import annotations

import numpy as np

from ..types import Frame


def grid(width: int, height: int, block: int) -> tuple[int, int]:
    """(rows, cols) of ``block``-sided luma blocks covering a frame."""
    return -(-height // block), -(-width // block)


def block_sum(a: np.ndarray, size: int, rows: int, cols: int) -> np.ndarray:
    """Sums of ``a`` over ``size``-sided cells (zero-padded to rows x cols cells)."""
    h, w = a.shape
    padded = np.zeros((rows * size, cols * size))
    padded[:h, :w] = a
    return padded.reshape(rows, size, cols, size).sum((1, 3))


def cell_sd(y: np.ndarray) -> np.ndarray:
    """Standard deviation of each 8x8 luma cell (edge cells padded by replication)."""
    h, w = y.shape
    a = np.pad(y.astype(np.float64), ((0, -h % 8), (0, -w % 8)), mode="edge")
    cells = a.reshape(a.shape[0] // 8, 8, a.shape[1] // 8, 8)
    return cells.std((1, 3))


def plane_block_sse(source: Frame, out: Frame, block: int, mu: float = 0.0) -> np.ndarray:
    """(3, rows, cols) SSE of Y, U and V per ``block``-sided luma block at the stream's bit depth; with
    ``mu``, Y also gets mu * sum over 8x8 luma cells of 64 * (sd_source - sd_out)^2."""
    rows, cols = grid(source.width, source.height, block)
    total = np.zeros((3, rows, cols))
    sizes = (block, block // 2, block // 2)
    for p, (a, b, size) in enumerate(zip(source.planes, out.planes, sizes)):
        total[p] = block_sum((a.astype(np.float64) - b) ** 2, size, rows, cols)
    if mu:
        total[0] += mu * block_sum(64.0 * (cell_sd(source.y) - cell_sd(out.y)) ** 2, block // 8, rows, cols)
    return total
