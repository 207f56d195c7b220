"""wiener's chroma decoding (normative): one rounding per chroma plane, ALF alternatives, and the filter shapes.

Why: rounding each chroma part (ALF, CC-ALF, cross-chroma) to an integer before adding them, as wiener did
before payload version 5, drops most corrections at high quality, which are below half a step (carphone
QP 27, V: the same filters give +0.105 dB rounded per part, +0.189 dB rounded once). And one chroma filter per plane misses
how much chroma statistics differ across a picture: a least-squares bound over 33 frames with a per-block
choice among 2 ALF filters (or none) lifts V from +0.28 to +0.56 dB on carphone, +0.30 to +0.45 on BBB
416x240 at QP 27 (VVC's chroma ALF alternatives).

* Accumulation: each part's sum is taken in units of 2^-8 (its coefficients times ``2^(8 - S)``), the
  parts on at a sample are added, and the total is rounded once:
  ``out = clip(x + ((acc + 2^7) >> 8), 0, 2^B - 1)``. Every sum stays within int32 for B <= 16.
* ALF alternatives (``AltFilter``): 1..4 chroma filters (each its own shift, clip and 6 coefficients) and,
  when more than one (or by choice with one), a map over blocks of ``2^map_log2`` chroma samples (8..64)
  in raster order: value 0 leaves the block without ALF, value v applies alternative v.
* Map syntax: per block, its left and above neighbours' values (those that exist, left first, each once)
  then the other values in increasing order form a list; the block's position in that list is coded in
  truncated unary (``1`` repeated index times, then ``0`` unless it is the last position).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .wiener_bits import BitReader, BitWriter, grid
from .wiener_jit import kernels


def diamond_pairs(radius: int) -> list[tuple[int, int]]:
    """One offset of each point-symmetric pair in the diamond |dy|+|dx| <= radius, inner rings first."""
    half = [(dy, dx) for dy in range(0, radius + 1) for dx in range(-radius, radius + 1)
            if 0 < abs(dy) + abs(dx) <= radius and (dy > 0 or dx > 0)]
    return sorted(half, key=lambda o: (abs(o[0]) + abs(o[1]), o))


ACC_SHIFT = 8  # chroma sums are taken in units of 2^-8 and rounded once
CHROMA_PAIRS = diamond_pairs(2)
CC_TAPS = ((-1, 0), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1), (2, 0))  # VVC's CC-ALF diamond
# the large CC-ALF shape: the luma samples within L1 distance 3.5 of the chroma sample's centre
# (between its 2x2 luma samples), 23 taps; chosen per part by ``cc_big u(1)``
CC_TAPS_BIG = tuple((dy, dx) for dy in range(-2, 4) for dx in range(-2, 4)
                    if (dy, dx) != (0, 0) and abs(2 * dy - 1) + abs(2 * dx - 1) <= 7)
MAX_ALTS = 4
MAP_LOG2 = range(3, 7)  # alternative-map blocks of 8..64 chroma samples
_OFFS_CHROMA, _OFFS_CC, _OFFS_CC_BIG = (np.array(o, np.int64) for o in (CHROMA_PAIRS, CC_TAPS, CC_TAPS_BIG))


@dataclass
class AltFilter:
    """A chroma ALF: ``alts`` (Filters) and the map choosing among them per block (None: the one
    alternative everywhere)."""

    alts: list
    amap: np.ndarray | None = None  # (gy, gx) int, 0 = no ALF, v = alternative v
    map_log2: int = 4


def clip_value(index: int, bit_depth: int) -> int:
    return 1 << max(bit_depth - 2 * index, 0)


def cc_taps(n: int) -> tuple:
    """The CC-ALF shape with ``n`` coefficients (7: VVC's, 23: the large one)."""
    return CC_TAPS_BIG if n == len(CC_TAPS_BIG) else CC_TAPS


def cc_features(y: np.ndarray, shape: tuple[int, int], taps=CC_TAPS):
    """Yield (k, Y[2i+dy, 2j+dx] - Y[2i, 2j]) over the chroma ``shape``, int32."""
    hc, wc = shape
    p = np.pad(y, ((2, 4), (2, 4)), mode="edge").astype(np.int32)
    centre = p[2:2 + 2 * hc:2, 2:2 + 2 * wc:2]
    for k, (dy, dx) in enumerate(taps):
        yield k, p[2 + dy:2 + dy + 2 * hc:2, 2 + dx:2 + dx + 2 * wc:2] - centre


def scaled(f) -> np.ndarray:
    """A filter's coefficients in 2^-8 units (int32)."""
    return (np.asarray(f.coefs, np.int64) << (ACC_SHIFT - f.shift)).astype(np.int32)


def _pair_sum(c: np.ndarray, coefs: np.ndarray, clips: np.ndarray, block_log2: int) -> np.ndarray:
    """sum_k coefs[block, k] * (clip(c[p+o_k] - c[p]) + clip(c[p-o_k] - c[p])) per sample, int32 (no
    rounding); ``coefs`` (gy, gx, 6) and ``clips`` (gy, gx) per block of ``2^block_log2`` samples."""
    h, w = c.shape
    p = np.pad(c, 2, mode="edge")
    if (jit := kernels()) is not None:
        return jit["pair_filter"](p, 2, _OFFS_CHROMA, coefs, clips, block_log2, 0, h, w)
    p = p.astype(np.int32)
    bs = 1 << min(block_log2, 20)
    rows, cols = np.minimum(np.arange(h) // bs, coefs.shape[0] - 1), np.minimum(np.arange(w) // bs, coefs.shape[1] - 1)
    cv = clips[rows[:, None], cols[None, :]]
    x = p[2:2 + h, 2:2 + w]
    acc = np.zeros((h, w), np.int32)
    for k, (dy, dx) in enumerate(CHROMA_PAIRS):
        a = np.clip(p[2 + dy:2 + dy + h, 2 + dx:2 + dx + w] - x, -cv, cv)
        b = np.clip(p[2 - dy:2 - dy + h, 2 - dx:2 - dx + w] - x, -cv, cv)
        acc += coefs[rows[:, None], cols[None, :], k] * (a + b)
    return acc


def alf_acc(c: np.ndarray, f, bit_depth: int) -> np.ndarray:
    """The ALF sum in 2^-8 units of a Filter (``f.clip``) or an AltFilter, int32 of c's shape."""
    if not isinstance(f, AltFilter):
        return _pair_sum(c, scaled(f).reshape(1, 1, -1), np.full((1, 1), clip_value(f.clip, bit_depth), np.int32), 30)
    table = np.zeros((len(f.alts) + 1, len(CHROMA_PAIRS)), np.int32)
    clips = np.zeros(len(f.alts) + 1, np.int32)
    for v, a in enumerate(f.alts, 1):
        table[v], clips[v] = scaled(a), clip_value(a.clip, bit_depth)
    if f.amap is None:
        return _pair_sum(c, table[1:2].reshape(1, 1, -1), clips[1:2].reshape(1, 1), 30)
    return _pair_sum(c, np.ascontiguousarray(table[f.amap]), np.ascontiguousarray(clips[f.amap]), f.map_log2)


def cc_acc(y: np.ndarray, shape: tuple[int, int], f) -> np.ndarray:
    """The CC-ALF sum in 2^-8 units, int32 of the chroma ``shape``."""
    taps = cc_taps(len(f.coefs))
    coefs = scaled(f)
    if (jit := kernels()) is not None:
        p = np.pad(y, ((2, 4), (2, 4)), mode="edge")
        ev, od = np.ascontiguousarray(p[:, 0::2]), np.ascontiguousarray(p[:, 1::2])
        return jit["cc_filter"](ev, od, _OFFS_CC_BIG if taps is CC_TAPS_BIG else _OFFS_CC, coefs, 0, *shape)
    acc = np.zeros(shape, np.int32)
    for k, fk in cc_features(y, shape, taps):
        acc += coefs[k] * fk
    return acc


def xc_acc(other: np.ndarray, f, bit_depth: int) -> np.ndarray:
    """The cross-chroma sum in 2^-8 units: the other plane's unclipped 5x5 diamond pairs."""
    return _pair_sum(other, scaled(f).reshape(1, 1, -1), np.full((1, 1), 1 << bit_depth, np.int32), 30)


def joint_output(x: np.ndarray, parts: list, ctu: int, bit_depth: int) -> np.ndarray:
    """``clip(x + ((sum of each (acc, CTU flags) part where on) + 2^7) >> 8, 0, 2^B - 1)`` in x's dtype."""
    if not parts:
        return x
    total = np.zeros(x.shape, np.int32)
    for acc, flags in parts:
        if flags is None:
            total += acc
        else:
            total += acc * np.repeat(np.repeat(flags, ctu, axis=0), ctu, axis=1)[: x.shape[0], : x.shape[1]]
    return rounded(x, total, bit_depth)


def rounded(x: np.ndarray, acc: np.ndarray, bit_depth: int) -> np.ndarray:
    """The output for plane ``x`` and total sum ``acc`` (2^-8 units), in x's dtype."""
    acc = acc + (1 << (ACC_SHIFT - 1))
    acc >>= ACC_SHIFT
    acc += x
    return np.clip(acc, 0, (1 << bit_depth) - 1).astype(x.dtype)


# ----------------------------------------------------------------------------- alternative map syntax


def candidates(m: np.ndarray, i: int, j: int, n: int) -> list[int]:
    """The values of map ``m`` in the order block (i, j) codes them: left, above, then the rest."""
    first = []
    if j > 0:
        first.append(int(m[i, j - 1]))
    if i > 0 and int(m[i - 1, j]) not in first:
        first.append(int(m[i - 1, j]))
    return first + [v for v in range(n + 1) if v not in first]


def symbol_bits(position: int, count: int) -> int:
    """Bits of a truncated-unary position among ``count`` values."""
    return position + (position < count - 1)


def map_bits(m: np.ndarray, n: int) -> int:
    """Bits ``write_map`` spends on map ``m`` with ``n`` alternatives."""
    return sum(symbol_bits(candidates(m, i, j, n).index(int(m[i, j])), n + 1)
               for i in range(m.shape[0]) for j in range(m.shape[1]))


def write_map(w: BitWriter, m: np.ndarray, n: int) -> None:
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            pos = candidates(m, i, j, n).index(int(m[i, j]))
            w.u((1 << pos) - 1, pos)
            if pos < n:
                w.u(0, 1)


def read_map(rd: BitReader, g: tuple[int, int], n: int) -> np.ndarray:
    m = np.zeros(g, np.int64)
    for i in range(g[0]):
        for j in range(g[1]):
            pos = 0
            while pos < n and rd.u(1):
                pos += 1
            m[i, j] = candidates(m, i, j, n)[pos]
    return m


def write_alt(w: BitWriter, f: AltFilter, write_filter) -> None:
    """``n_alt_minus1 u(2)``, the filters (``write_filter``), ``map_on u(1)`` when n = 1, then the map
    (``map_log2_minus3 u(2)`` and its symbols) when n > 1 or map_on."""
    n = len(f.alts)
    w.u(n - 1, 2)
    for a in f.alts:
        write_filter(w, a)
    if n == 1:
        w.u(f.amap is not None, 1)
    if f.amap is not None:
        w.u(f.map_log2 - MAP_LOG2[0], 2)
        write_map(w, f.amap, n)


def read_alt(rd: BitReader, chroma_shape: tuple[int, int], read_filter) -> AltFilter:
    n = rd.u(2) + 1
    alts = [read_filter(rd) for _ in range(n)]
    if n == 1 and not rd.u(1):
        return AltFilter(alts)
    log2 = rd.u(2) + MAP_LOG2[0]
    return AltFilter(alts, read_map(rd, grid(chroma_shape, 1 << log2), n), log2)

