"""The ``gan-enhance/1`` payload: conditioning QP and a per-block realism map (pure Python + numpy).

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

from genpost import PayloadError

VERSION = 1
BLOCK = 64  # luma samples per map block side
LEVELS = ((0.0, 0.0), (1.0, 0.0), (1.0, 0.5), (1.0, 1.0))  # off, distortion, halfway, perception
HEADER = 3


def grid(width: int, height: int) -> tuple[int, int]:
    """(rows, cols) of the block map for a luma size."""
    return -(-height // BLOCK), -(-width // BLOCK)


def change_bits(prev: int, cur: int) -> int:
    """Bits the map spends on block level ``cur`` after ``prev``."""
    if cur == prev:
        return 1
    return 2 if _rank(prev, cur) == 0 else 3


def _rank(prev: int, cur: int) -> int:
    return [lv for lv in range(len(LEVELS)) if lv != prev].index(cur)


def encode(qp: int, levels: np.ndarray) -> bytes:
    flat = [int(v) for v in np.asarray(levels).ravel()]
    if len(set(flat)) == 1:
        return bytes([VERSION, qp, 0, flat[0]])
    bits = [(flat[0] >> 1) & 1, flat[0] & 1]
    for prev, cur in pairwise(flat):
        if cur == prev:
            bits.append(0)
        else:
            bits += {0: [1, 0], 1: [1, 1, 0], 2: [1, 1, 1]}[_rank(prev, cur)]
    bits += [0] * (-len(bits) % 8)
    body = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
    return bytes([VERSION, qp, 1]) + body


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
    bits = np.unpackbits(np.frombuffer(payload, np.uint8, offset=HEADER))
    pos, out = 2, np.empty(rows * cols, np.uint8)
    if len(bits) < 2:
        raise PayloadError("gan-enhance/1 block map is truncated")
    out[0] = bits[0] * 2 + bits[1]
    try:
        for i in range(1, rows * cols):
            if bits[pos] == 0:
                out[i], pos = out[i - 1], pos + 1
                continue
            if bits[pos + 1] == 0:
                rank, pos = 0, pos + 2
            else:
                rank, pos = 1 + int(bits[pos + 2]), pos + 3
            out[i] = [lv for lv in range(len(LEVELS)) if lv != out[i - 1]][rank]
    except IndexError:
        raise PayloadError("gan-enhance/1 block map is truncated") from None
    if len(bits) - pos >= 8 or bits[pos:].any():
        raise PayloadError("gan-enhance/1 block map has trailing bytes or non-zero padding (wrong frame size?)")
    return qp, out.reshape(rows, cols)
