"""wiener's own bit syntax on genpost's bit reader and writer: flag runs, and the block grid they cover.

Readers raise ``PayloadError`` on anything they cannot parse (the shared reader's ``MalformedBits`` is
one), so a damaged payload never crashes.
"""

from __future__ import annotations

import numpy as np

from .. import BitReader, BitWriter, PayloadError


def write_bits(w: BitWriter, bits: np.ndarray) -> None:
    """Each of ``bits`` (0/1) as one bit."""
    n = len(bits)
    w.u(int.from_bytes(np.packbits(bits.astype(np.uint8)).tobytes(), "big") >> (-n % 8), n)


def read_bits(rd: BitReader, n: int) -> np.ndarray:
    """The next ``n`` bits as a uint8 array of 0/1."""
    raw = rd.u(n).to_bytes(-(-n // 8), "big")
    return np.unpackbits(np.frombuffer(raw, np.uint8))[-n:]


def finish(rd: BitReader) -> None:
    """A payload ends with its last plane and the zero bits padding its last byte."""
    if not rd.at_zero_padding():
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
    if len(rle) < len(f):
        w.u(1, 1)
        w.append(rle)
    else:
        w.u(0, 1)
        write_bits(w, flags.ravel())


def read_flags(rd: BitReader, n: int) -> np.ndarray:
    """The inverse of ``write_flags`` for ``n`` flags; runs must add up to exactly ``n``."""
    if not rd.u(1):
        return read_bits(rd, n).astype(bool)
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
