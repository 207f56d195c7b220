"""Bit I/O of wiener's payloads: MSB-first bits, Exp-Golomb codes, flag runs.

Readers raise ``PayloadError`` on anything they cannot parse, so a damaged payload never crashes.
"""

from __future__ import annotations

import numpy as np

from ..postprocessor import PayloadError

MAX_EG_ZEROS = 24  # an Exp-Golomb prefix longer than this is damage, not data


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, value: int, n: int) -> None:
        self.bits.extend((value >> (n - 1 - i)) & 1 for i in range(n))

    def ue(self, value: int, k: int = 0) -> None:
        """Exp-Golomb of order k (k low bits raw after an order-0 code of value >> k)."""
        v = (value >> k) + 1
        n = v.bit_length()
        self.u(0, n - 1)
        self.u(v, n)
        self.u(value & ((1 << k) - 1), k)

    def tobytes(self) -> bytes:
        return np.packbits(np.array(self.bits, dtype=np.uint8)).tobytes()


class BitReader:
    """MSB-first reader over ``data`` held as one Python int (fast for payloads of a few hundred bytes)."""

    def __init__(self, data: bytes) -> None:
        self.n = 8 * len(data)
        self.value = int.from_bytes(data, "big")
        self.pos = 0

    def array(self, n: int) -> np.ndarray:
        """The next ``n`` bits as a uint8 array of 0/1."""
        v = self.u(n)
        return np.array([(v >> (n - 1 - i)) & 1 for i in range(n)], np.uint8)

    def u(self, n: int) -> int:
        if self.pos + n > self.n:
            raise PayloadError("wiener: payload truncated")
        self.pos += n
        return (self.value >> (self.n - self.pos)) & ((1 << n) - 1)

    def ue(self, k: int = 0) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > MAX_EG_ZEROS:
                raise PayloadError("wiener: Exp-Golomb code too long")
        v = ((1 << zeros) | self.u(zeros)) - 1
        return (v << k) | self.u(k)

    def finish(self) -> None:
        rest = self.n - self.pos
        if rest >= 8 or self.value & ((1 << rest) - 1):
            raise PayloadError("wiener: trailing data after the last plane")


def ue_bits(value: np.ndarray, k: int) -> np.ndarray:
    """Length in bits of the order-k Exp-Golomb code of each value."""
    return 2 * np.floor(np.log2((np.asarray(value) >> k) + 1)).astype(np.int64) + 1 + k


def write_flags(w: BitWriter, flags: np.ndarray) -> None:
    """rle u(1), then either one bit per flag or the first flag and ue(run-1) of alternating runs."""
    f = flags.ravel().astype(int).tolist()
    runs = np.diff(np.flatnonzero(np.diff(np.r_[-1, f, -1]))).tolist()
    rle = BitWriter()
    rle.u(f[0], 1)
    for n in runs:
        rle.ue(n - 1)
    if len(rle.bits) < len(f):
        w.u(1, 1)
        w.bits.extend(rle.bits)
    else:
        w.u(0, 1)
        w.bits.extend(f)


def read_flags(rd: BitReader, n: int) -> np.ndarray:
    """The inverse of ``write_flags`` for ``n`` flags; runs must add up to exactly ``n``."""
    if not rd.u(1):
        return rd.array(n).astype(bool)
    flags = np.empty(n, bool)
    value, pos = bool(rd.u(1)), 0
    while pos < n:
        run = rd.ue() + 1
        if pos + run > n:
            raise PayloadError("wiener: block flag runs exceed the block count")
        flags[pos:pos + run] = value
        pos, value = pos + run, not value
    return flags


def grid(shape: tuple[int, int], bs: int) -> tuple[int, int]:
    """Blocks of ``bs`` samples covering ``shape`` (the ragged edge included)."""
    return (-(-shape[0] // bs), -(-shape[1] // bs))


def block_mask(flags: np.ndarray, bs: int, shape: tuple[int, int]) -> np.ndarray:
    return np.repeat(np.repeat(flags, bs, axis=0), bs, axis=1)[: shape[0], : shape[1]]
