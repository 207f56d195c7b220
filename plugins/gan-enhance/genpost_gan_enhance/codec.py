"""The ``gan-enhance/1`` payload: conditioning QP and a per-block realism map (genpost's bit I/O + numpy).

Layout (bytes)::

    0  version (1)
    1  qp: the QP the generator is conditioned on, 0..63
    2  mode: 0 = one level for the whole frame, 1 = a 64x64-block map
    3  mode 0: the level (0..3)
    3.. mode 1: the map, blocks in raster order, MSB first: the first block as 2 bits, then per block
       '0' = same level as the previous block, '10' / '110' / '111' = the 1st / 2nd / 3rd other level in
       ascending order; zero bits pad the last byte.

Levels are (strength s, realism beta) pairs: ``out = x + s * (r_dist + beta * (r_perc - r_dist))``.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from genpost import BitReader, BitWriter, MalformedBits, PayloadError

VERSION = 1
BLOCK = 64  # luma samples per map block side
LEVELS = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (1.0, 1.0))  # off, distortion, halfway, perception
HEADER = 3
CHANGE_CODES = ((0b10, 2), (0b110, 3), (0b111, 3))  # (bits, length) for a change to the 1st/2nd/3rd other level


def grid(width: int, height: int) -> tuple[int, int]:
    """(rows, cols) of the block map for a luma size."""
    return -(-height // BLOCK), -(-width // BLOCK)


def change_bits(prev: int, cur: int) -> int:
    """Bits the map spends on block level ``cur`` after ``prev``."""
    return 1 if cur == prev else CHANGE_CODES[_rank(prev, cur)][1]


def _rank(prev: int, cur: int) -> int:
    return [lv for lv in range(len(LEVELS)) if lv != prev].index(cur)


def encode(qp: int, levels: np.ndarray) -> bytes:
    flat = [int(v) for v in np.asarray(levels).ravel()]
    if len(set(flat)) == 1:
        return bytes([VERSION, qp, 0, flat[0]])
    w = BitWriter()
    w.u(flat[0], 2)
    for prev, cur in pairwise(flat):
        if cur == prev:
            w.u(0, 1)
        else:
            w.u(*CHANGE_CODES[_rank(prev, cur)])
    return bytes([VERSION, qp, 1]) + w.tobytes()


def decode(payload: bytes, rows: int, cols: int) -> tuple[int, np.ndarray]:
    """(qp, levels of shape (rows, cols)); PayloadError for anything that is not exactly a valid payload."""
    if len(payload) < HEADER + 1 or payload[0] != VERSION:
        raise PayloadError(f"gan-enhance/1 payload must start with version {VERSION} and hold at least 4 bytes")
    qp, mode = payload[1], payload[2]
    if qp > 63 or mode > 1:
        raise PayloadError(f"gan-enhance/1 payload has qp {qp} or mode {mode} out of range")
    if mode == 0:
        if len(payload) != 4 or payload[3] >= len(LEVELS):
            raise PayloadError("gan-enhance/1 uniform payload must be 4 bytes with a level 0..3")
        return qp, np.full((rows, cols), payload[3], np.uint8)
    r = BitReader(payload[HEADER:])
    out = np.empty(rows * cols, np.uint8)
    try:
        out[0] = r.u(2)
        for i in range(1, rows * cols):
            if not r.u(1):
                out[i] = out[i - 1]
                continue
            rank = 1 + r.u(1) if r.u(1) else 0
            out[i] = [lv for lv in range(len(LEVELS)) if lv != out[i - 1]][rank]
    except MalformedBits:
        raise PayloadError("gan-enhance/1 block map is truncated") from None
    if not r.at_zero_padding():
        raise PayloadError("gan-enhance/1 block map has trailing bytes or non-zero padding (wrong frame size?)")
    return qp, out.reshape(rows, cols)
