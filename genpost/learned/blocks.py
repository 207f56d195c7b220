"""Per-block distortion for learned plugins' RD choices (numpy): SSE per plane and block, and the
texture-energy term that rewards keeping the source's local contrast.

The encoder's target (``--target``, ``Context.target``) decides the distortion every learned plugin
minimises, here and only here: ``fidelity`` is SSE per plane (exactly as before targets existed);
``perception`` adds ``PERCEPTION_MU`` times the texture-energy loss on luma, so a realism head, a noisy
sampler or a diffusion step that keeps the source's local contrast can win where plain SSE would reject it.
A plugin's own ``perception_weight`` option, when given, sets the weight under either target."""

from __future__ import annotations

import numpy as np

from ..postprocessor import Context
from ..types import Frame

PERCEPTION_MU = 1.0  # texture-energy weight under --target perception (the SSE of 8x8-cell contrast losses)


def perceptual_weight(ctx: Context, own: float = 0.0) -> float:
    """mu of D = SSE + mu * texture loss for this job: the plugin's own ``perception_weight`` when set (> 0),
    else 0 under ``fidelity`` and ``PERCEPTION_MU`` under ``perception``."""
    if own:
        return float(own)
    return PERCEPTION_MU if ctx.target == "perception" else 0.0


def texture_loss(source_y: np.ndarray, out_y: np.ndarray) -> float:
    """The perceptual term on one luma plane: sum over 8x8 cells of 64 * (sd_source - sd_out)^2."""
    return float((64.0 * (cell_sd(source_y) - cell_sd(out_y)) ** 2).sum())


def plane_distortion(source: Frame, out: Frame, mu: float = 0.0) -> np.ndarray:
    """(3,) D per plane of a whole frame: SSE (``rd.plane_sse``, bit for bit), and on Y ``mu`` times
    ``texture_loss``."""
    from .rd import plane_sse

    d = plane_sse(source, out)
    if mu:
        d[0] += mu * texture_loss(source.y, out.y)
    return d


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
