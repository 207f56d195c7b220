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

Version 2 prefixes a version-1 payload with what content adaptation and "never worse per plane" need::

    0  version (2)
    1  flags: bits 0..2 = planes Y, U, V restored (a plane whose bit is 0 stays as decoded);
       bit 3 = the period's content-adaptive update is in force
    2  with bit 3: the update's tag, u16 BE (crc32 of the update payload & 0xFFFF), so a frame whose
       update was lost or damaged is detected and falls back instead of running other weights
    .. a version-1 payload

The encoder writes version 1 when all planes restore with the shipped weights (the common, smallest case).
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


ALL_PLANES = 0b111


def update_tag(update: bytes) -> int:
    import zlib

    return zlib.crc32(update) & 0xFFFF


def encode(qp: int, levels: np.ndarray, planes: int = ALL_PLANES, tag: int | None = None) -> bytes:
    """The payload; version 2 only when a plane is left as decoded or an update is in force (``tag``)."""
    body = _encode_v1(qp, levels)
    if planes == ALL_PLANES and tag is None:
        return body
    if not 0 <= planes <= ALL_PLANES:
        raise ValueError("planes is a 3-bit mask")
    flags = planes | (8 if tag is not None else 0)
    return bytes([2, flags]) + (tag.to_bytes(2, "big") if tag is not None else b"") + body


def decode_v2(payload: bytes, rows: int, cols: int) -> tuple[int, np.ndarray, int, int | None]:
    """(qp, levels, plane mask, update tag or None) of a version-1 or -2 payload; PayloadError otherwise."""
    if payload[:1] != b"\x02":
        return (*decode(payload, rows, cols), ALL_PLANES, None)
    if len(payload) < 2 or payload[1] >> 4:
        raise PayloadError("gan-enhance/1 version-2 payload has bad flags")
    flags = payload[1]
    tag = int.from_bytes(payload[2:4], "big") if flags & 8 else None
    body = payload[4:] if flags & 8 else payload[2:]
    if flags & 8 and len(payload) < 4:
        raise PayloadError("gan-enhance/1 version-2 payload is truncated")
    return (*decode(body, rows, cols), flags & ALL_PLANES, tag)


def _encode_v1(qp: int, levels: np.ndarray) -> bytes:
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
