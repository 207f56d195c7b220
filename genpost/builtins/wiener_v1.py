"""Decoder of wiener payload version 1 (genpost <= 0.1: one diamond filter per plane, block flags).

Kept so that streams written by earlier releases still restore bit-exactly; the encoder writes
version 2 (``wiener_alf``). Layout (MSB-first, zero-padded to a byte; the 4-bit version is read by
the caller):

    for plane in Y, U, V:
      mode             u(2)   0 off, 1 whole plane, 2 per-block flags, 3 reserved
      if mode != 0:
        shift_minus_m  u(2)   S = m..m+3 (m = 5 luma, 4 chroma); |c_k| <= 2^S
        eg_k           u(2)   Exp-Golomb order of the coefficients
        K times        |c| as ue_k, then a sign bit if c != 0   (K = 12 luma, 6 chroma)
        if mode == 2:
          log2_bs_m4   u(2)   block size 16..128 samples of this plane, raster order
          flags               ``wiener_bits.write_flags``

Filter: ``out = clip(x + ((sum_k c_k (x[p+o_k] + x[p-o_k] - 2 x[p]) + 2^(S-1)) >> S))`` in int32,
edge-replicated borders, pair offsets from ``diamond_pairs``.
"""

from __future__ import annotations

import numpy as np

from ..postprocessor import PayloadError
from .wiener_bits import BitReader, block_mask, grid, read_flags

RADIUS = (3, 2, 2)  # diamond radius per plane: 7x7 luma, 5x5 chroma
MIN_SHIFT = (5, 4, 4)


def diamond_pairs(radius: int) -> list[tuple[int, int]]:
    """One offset of each point-symmetric pair in the diamond |dy|+|dx| <= radius, inner rings first."""
    half = [(dy, dx) for dy in range(0, radius + 1) for dx in range(-radius, radius + 1)
            if 0 < abs(dy) + abs(dx) <= radius and (dy > 0 or dx > 0)]
    return sorted(half, key=lambda o: (abs(o[0]) + abs(o[1]), o))


def apply_filter(plane: np.ndarray, coefs, shift: int, radius: int, max_value: int) -> np.ndarray:
    """The version-1 integer filter; returns plane's dtype (int32 cannot overflow: |c| <= 2^8)."""
    h, w = plane.shape
    r = radius
    p = np.pad(plane, r, mode="edge").astype(np.int32)
    acc = np.zeros((h, w), np.int32)
    tmp = np.empty((h, w), np.int32)
    csum = 0
    for (dy, dx), c in zip(diamond_pairs(radius), coefs):
        if c:
            np.add(p[r + dy:r + dy + h, r + dx:r + dx + w], p[r - dy:r - dy + h, r - dx:r - dx + w], out=tmp)
            tmp *= int(c)
            acc += tmp
            csum += int(c)
    centre = p[r:r + h, r:r + w]
    np.multiply(centre, -2 * csum, out=tmp)
    acc += tmp
    acc += 1 << (shift - 1)
    acc >>= shift
    acc += centre
    np.clip(acc, 0, max_value, out=acc)
    return acc.astype(plane.dtype)


def read_plane(rd: BitReader, p: int, shape: tuple[int, int]) -> dict | None:
    mode = rd.u(2)
    if mode == 0:
        return None
    if mode == 3:
        raise PayloadError("wiener: reserved plane mode 3")
    shift = rd.u(2) + MIN_SHIFT[p]
    k = rd.u(2)
    coefs = []
    for _ in diamond_pairs(RADIUS[p]):
        mag = rd.ue(k)
        if mag > (1 << shift):
            raise PayloadError(f"wiener: coefficient {mag} out of range for shift {shift}")
        coefs.append(-mag if mag and rd.u(1) else mag)
    choice = {"shift": shift, "coefs": np.array(coefs, np.int64), "flags": None}
    if mode == 2:
        log2_bs = rd.u(2) + 4
        g = grid(shape, 1 << log2_bs)
        choice.update(flags=read_flags(rd, g[0] * g[1]).reshape(g), log2_bs=log2_bs)
    return choice


def restore_v1(rd: BitReader, planes, max_value: int) -> list[np.ndarray]:
    """Parse the rest of a version-1 payload and filter the planes."""
    choices = [read_plane(rd, p, x.shape) for p, x in enumerate(planes)]
    rd.finish()
    out = []
    for p, (x, c) in enumerate(zip(planes, choices)):
        if c is not None:
            y = apply_filter(x, c["coefs"], c["shift"], RADIUS[p], max_value)
            x = y if c["flags"] is None else np.where(block_mask(c["flags"], 1 << c["log2_bs"], x.shape), y, x)
        out.append(x)
    return out
