"""wiener's payload (format ``wiener/1``): an ALF-class loop filter (as in VVC) for streams that lack one.

Normative decoder side: the luma classification, the integer filters, and the syntax. The encoder
(``wiener_fit``) measures distortion with these very functions, so both sides are bit-exact.

* Luma: each 4x4 block is classified from 1-D Laplacians (vertical, horizontal, two diagonals) summed
  over the 8x8 window around it: direction D in 0..4 and activity A in 0..4, class ``5 D + A`` (25
  classes). Classes map to up to 8 filters (a 7x7 diamond, 12 coefficient pairs). Per block, one of 4
  geometric transforms (identity, transpose, vertical flip, rotation) chosen from the gradients permutes
  the coefficients so one filter serves every orientation.
* Non-linear: each filter clips every neighbour difference to +-clip before weighting it,
  ``clip = 2^(B - 2 i)`` for a coded index ``i`` in 0..3 (i = 0 clips nothing).
* Chroma, per plane, up to three parts (``wiener_chroma``): an ALF (5x5 diamond, 6 pairs, its own clip;
  up to 4 alternatives chosen per block by a coded map), a cross-component filter (CC-ALF: 7 or 23
  coefficients over the pre-filter luma around the chroma sample's co-sited luma sample, high-pass
  ``Y[o] - Y[0]``) and a cross-chroma filter (the other chroma plane's 5x5 diamond high-pass). Their sums
  are taken in 2^-8 units, added and rounded once.
* Per CTU (64 or 128 luma samples, half that in chroma) each part is on or off.

Luma is a DC-free correction in int32: ``delta = (sum_k c_k f_k + 2^(S-1)) >> S`` with
``f_k = clip(x[p+o_k]-x[p]) + clip(x[p-o_k]-x[p])`` (edge-replicated borders),
``out = clip(x + delta, 0, 2^B - 1)`` in CTUs where it is on.

Syntax (MSB-first, zero-padded to a byte)::

    version             u(4)   5 a filter set; 2 a filter set without chroma parts; 3 a reference (below)
    ctu_log2_minus6     u(1)
    luma_on             u(1)
    if luma_on:  shift u(2) (S = 5+v), n_filters_minus1 u(3), if n > 1: 25 x u(ceil(log2 n)) class map,
                 eg_k u(2), n x [clip u(2), 12 x coef], ctu flags
    version 5, for U, V:
                 alf_on u(1); if on: ``wiener_chroma.write_alt`` (n x [shift u(2), eg_k u(2), clip u(2),
                     6 x coef], the map), ctu flags
                 cc_on u(1);  if on: cc_big u(1), shift u(2), eg_k u(2), 7 or 23 x coef, ctu flags
                 xc_on u(1);  if on: shift u(2), eg_k u(2), 6 x coef, ctu flags
    version 2, for U, V: alf_on u(1) = 0, cc_on u(1) = 0
    coef:        |c| as ue(eg_k), then a sign bit if c != 0; |c| <= 2^S
    ctu flags:   all_on u(1); if 0: ``wiener_bits.write_flags`` over the CTUs in raster order

The version field is what lets another layout coexist with these: ``restore`` meets any other value (1 and
4 were pre-release layouts; a later one would take a new value) with ``PayloadError``, so the frame keeps
its base decode and is counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..postprocessor import PayloadError
from .wiener_bits import BitReader, BitWriter, block_mask, finish, grid, read_flags, write_flags
from .wiener_chroma import (
    CC_TAPS,
    CC_TAPS_BIG,
    CHROMA_PAIRS,
    AltFilter,
    alf_acc,
    cc_acc,
    clip_value,
    diamond_pairs,
    joint_output,
    read_alt,
    write_alt,
    xc_acc,
)
from .wiener_jit import kernels

VERSION_LUMA = 2  # a filter set without chroma parts (version 5's syntax less the chroma part flags)
VERSION_REF = 3  # a frame's reference to the period's set (below)
VERSION_SET = 5  # a filter set
VERSIONS = (VERSION_LUMA, VERSION_REF, VERSION_SET)
LUMA_PAIRS = diamond_pairs(3)
N_CLASSES = 25
MAX_FILTERS = 8
MIN_SHIFT = 5
ACTIVITY_TABLE = np.array([0, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4])
ACTIVITY_SHIFT = 5  # activity index = min(15, (g_v + g_h) >> (B - 8 + ACTIVITY_SHIFT))


def _transformed(o: tuple[int, int], t: int) -> tuple[int, int]:
    dy, dx = o
    dy, dx = ((dy, dx), (dx, dy), (-dy, dx), (-dx, dy))[t]
    return (dy, dx) if dy > 0 or (dy == 0 and dx > 0) else (-dy, -dx)


_OFFS_LUMA = np.array(LUMA_PAIRS, np.int64)
# PERM[t, j]: the coefficient of the canonical filter that weights feature pair j under transform t
PERM = np.array([[LUMA_PAIRS.index(_transformed(o, t)) for o in LUMA_PAIRS] for t in range(4)])


# ----------------------------------------------------------------------------- classification


def laplacian_sums(y: np.ndarray) -> tuple[np.ndarray, ...]:
    """(g_v, g_h, g_d0, g_d1) per 4x4 block: |2x - a - b| summed over rows/cols -2..+5 of the block."""
    h, w = y.shape
    h4, w4 = -(-h // 4), -(-w // 4)
    hh, ww = 4 * h4, 4 * w4
    if (jit := kernels()) is not None:
        return jit["laplacian_sums"](np.pad(y, ((3, 3 + hh - h), (3, 3 + ww - w)), mode="edge"), h4, w4)
    p = np.pad(y, ((3, 3 + hh - h), (3, 3 + ww - w)), mode="edge").astype(np.int32)

    def at(dy, dx):
        return p[1 + dy:hh + 5 + dy, 1 + dx:ww + 5 + dx]

    c2 = 2 * at(0, 0)
    out = []
    for (ay, ax) in ((1, 0), (0, 1), (1, 1), (1, -1)):
        lap = np.abs(c2 - at(ay, ax) - at(-ay, -ax))
        cells = lap.reshape(h4 + 1, 4, w4 + 1, 4).sum(axis=(1, 3), dtype=np.int64)
        out.append(cells[:-1, :-1] + cells[1:, :-1] + cells[:-1, 1:] + cells[1:, 1:])
    return tuple(out)


def classify(y: np.ndarray, bit_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(class 0..24, transform 0..3) per 4x4 block of the luma plane."""
    if (jit := kernels()) is not None:
        g = laplacian_sums(y)
        return jit["classes"](g, max(bit_depth - 8 + ACTIVITY_SHIFT, 0), ACTIVITY_TABLE)
    gv, gh, gd0, gd1 = laplacian_sums(y)
    hv_max, hv_min = np.maximum(gv, gh), np.minimum(gv, gh)
    d_max, d_min = np.maximum(gd0, gd1), np.minimum(gd0, gd1)
    hv_wins = hv_max * d_min > d_max * hv_min
    direction = np.where(hv_wins, np.where(2 * hv_max > 9 * hv_min, 2, 1), np.where(2 * d_max > 9 * d_min, 4, 3))
    direction[(hv_max <= 2 * hv_min) & (d_max <= 2 * d_min)] = 0
    act = np.minimum((gv + gh) >> max(bit_depth - 8 + ACTIVITY_SHIFT, 0), 15)
    cls = 5 * direction + ACTIVITY_TABLE[act]
    transform = (gv > gh).astype(np.int64) + 2 * (gd0 > gd1)
    return cls, transform


# ----------------------------------------------------------------------------- filters


@dataclass
class Filter:
    """One coded filter: integer coefficients meaning c / 2^shift, and a clip index."""

    shift: int
    coefs: np.ndarray  # (K,) int64; luma sets use (n, K) with ``clips`` (n,)
    clip: int = 0


@dataclass
class LumaSet:
    shift: int
    coefs: np.ndarray  # (n_filters, 12) int64
    clips: np.ndarray  # (n_filters,) int
    class_map: np.ndarray  # (25,) int, filter index per class


@dataclass
class Part:
    """One of the seven filters of a payload and its CTU flags (None: on everywhere)."""

    filt: LumaSet | Filter | AltFilter
    flags: np.ndarray | None = None


@dataclass
class Payload:
    """A filter set: its parts, each None (off) or a Part. Chroma ALF filters may be AltFilters."""

    ctu_log2: int
    luma: Part | None
    chroma: list  # ALF: [Part | None] * 2
    cc: list  # [Part | None] * 2
    xc: list = field(default_factory=lambda: [None, None])  # cross-chroma: U from V's high-pass, V from U's


def luma_delta(y: np.ndarray, ls: LumaSet, bit_depth: int, classes=None) -> np.ndarray:
    """The luma correction (already shifted), int32 of y's shape."""
    h, w = y.shape
    cls, tr = classify(y, bit_depth) if classes is None else classes
    h4, w4 = cls.shape
    shape4 = (h4, 4, w4, 4)
    p = np.pad(y, ((3, 3 + 4 * h4 - h), (3, 3 + 4 * w4 - w)), mode="edge")
    fidx = ls.class_map[cls]
    per_block = ls.coefs[:, PERM].reshape(-1, len(LUMA_PAIRS))[fidx * 4 + tr].astype(np.int32)  # (h4, w4, K)
    cv = np.array([clip_value(int(i), bit_depth) for i in ls.clips], np.int32)[fidx]
    hh, ww = 4 * h4, 4 * w4
    if (jit := kernels()) is not None:
        out = jit["pair_filter"](p, 3, _OFFS_LUMA, per_block, cv, 2, ls.shift, h, w)
        return out
    p = p.astype(np.int32)
    clips = (-cv[:, None, :, None], cv[:, None, :, None]) if ls.clips.any() else None  # per-block bounds
    x = p[3:3 + hh, 3:3 + ww].reshape(shape4)
    acc = np.zeros(shape4, np.int32)
    a, b = np.empty(shape4, np.int32), np.empty(shape4, np.int32)
    for j, (dy, dx) in enumerate(LUMA_PAIRS):
        np.subtract(p[3 + dy:3 + dy + hh, 3 + dx:3 + dx + ww].reshape(shape4), x, out=a)
        np.subtract(p[3 - dy:3 - dy + hh, 3 - dx:3 - dx + ww].reshape(shape4), x, out=b)
        if clips is not None:
            np.minimum(a, clips[1], out=a)
            np.maximum(a, clips[0], out=a)
            np.minimum(b, clips[1], out=b)
            np.maximum(b, clips[0], out=b)
        a += b
        a *= per_block[:, :, j][:, None, :, None]
        acc += a
    acc += 1 << (ls.shift - 1)
    acc >>= ls.shift
    return acc.reshape(hh, ww)[:h, :w]


def masked(delta: np.ndarray, flags: np.ndarray | None, ctu: int) -> np.ndarray:
    if flags is not None:
        delta *= block_mask(flags, ctu, delta.shape)
    return delta


def apply_payload(planes, pl: Payload, bit_depth: int) -> list[np.ndarray]:
    """The restored planes (the decoder's output, also what the encoder measures)."""
    y = planes[0]
    ctu = 1 << pl.ctu_log2
    out = [_combine(y, [(luma_delta(y, pl.luma.filt, bit_depth), pl.luma.flags)] if pl.luma else [], ctu, bit_depth)]
    for i, (c, alf, cc, xc) in enumerate(zip(planes[1:], pl.chroma, pl.cc, pl.xc)):
        accs = [] if alf is None else [(alf_acc(c, alf.filt, bit_depth), alf.flags)]
        accs += [] if cc is None else [(cc_acc(y, c.shape, cc.filt), cc.flags)]
        accs += [] if xc is None else [(xc_acc(planes[2 - i], xc.filt, bit_depth), xc.flags)]
        out.append(joint_output(c, accs, ctu // 2, bit_depth))
    return out


def _combine(x: np.ndarray, deltas: list, ctu: int, bit_depth: int) -> np.ndarray:
    """``clip(x + each delta (at most two) where its CTU flag is on, 0, 2^B - 1)`` in x's dtype."""
    if not deltas:
        return x
    maxv = (1 << bit_depth) - 1
    if (jit := kernels()) is not None:
        args = []
        for d, flags in deltas + [(None, None)] * (2 - len(deltas)):
            if d is None:  # no second delta: a single CTU, off
                args += [np.zeros((1, 1), np.int32), np.zeros((1, 1), bool), 30]
            elif flags is None:  # on everywhere: a single CTU covering the plane
                args += [d, np.ones((1, 1), bool), 30]
            else:
                args += [d, flags, ctu.bit_length() - 1]
        return jit["combine"](x, *args, maxv)
    total = np.zeros(x.shape, np.int32)
    for d, flags in deltas:
        total += masked(d, flags, ctu)
    total += x
    return np.clip(total, 0, maxv).astype(x.dtype)


# ----------------------------------------------------------------------------- syntax


def coef_bits(q: np.ndarray, k: int) -> np.ndarray:
    """Bits of each coefficient (magnitude ue_k, sign when non-zero)."""
    a = np.abs(q)
    return 2 * np.floor(np.log2((a >> k) + 1)).astype(np.int64) + 1 + k + (a != 0)


def best_order(q: np.ndarray) -> int:
    return int(np.argmin([coef_bits(q, k).sum() for k in range(4)]))


def _write_coefs(w: BitWriter, q: np.ndarray, k: int) -> None:
    for c in q.tolist():
        w.ue(abs(c), k)
        if c:
            w.u(c < 0, 1)


def _read_coefs(rd: BitReader, n: int, k: int, shift: int) -> np.ndarray:
    out = []
    for _ in range(n):
        mag = rd.ue(k)
        if mag > (1 << shift):
            raise PayloadError(f"wiener: coefficient {mag} out of range for shift {shift}")
        out.append(-mag if mag and rd.u(1) else mag)
    return np.array(out, np.int64)


def _write_flags(w: BitWriter, flags: np.ndarray | None) -> None:
    w.u(flags is None, 1)
    if flags is not None:
        write_flags(w, flags)


def _read_flags(rd: BitReader, g: tuple[int, int]) -> np.ndarray | None:
    return None if rd.u(1) else read_flags(rd, g[0] * g[1]).reshape(g)


def _write_filter(w: BitWriter, f: Filter, with_clip: bool) -> None:
    w.u(f.shift - MIN_SHIFT, 2)
    k = best_order(f.coefs)
    w.u(k, 2)
    if with_clip:
        w.u(f.clip, 2)
    _write_coefs(w, f.coefs, k)


def _read_filter(rd: BitReader, n: int, with_clip: bool) -> Filter:
    shift = rd.u(2) + MIN_SHIFT
    k = rd.u(2)
    clip = rd.u(2) if with_clip else 0
    return Filter(shift, _read_coefs(rd, n, k, shift), clip)


def class_map_bits(n: int) -> int:
    return (n - 1).bit_length()


def payload_version(pl: Payload) -> int:
    """5 for a set with a chroma part, else 2 (the same without the chroma part flags)."""
    return VERSION_SET if any(p is not None for p in [*pl.chroma, *pl.cc, *pl.xc]) else VERSION_LUMA


def write_payload(pl: Payload) -> BitWriter:
    """The set ``pl`` in version 5's syntax, or 2's when it has no chroma part (``payload_version``)."""
    w = BitWriter()
    version = payload_version(pl)
    w.u(version, 4)
    w.u(pl.ctu_log2 - 6, 1)
    w.u(pl.luma is not None, 1)
    if pl.luma is not None:
        ls = pl.luma.filt
        n = len(ls.coefs)
        w.u(ls.shift - MIN_SHIFT, 2)
        w.u(n - 1, 3)
        for f in ls.class_map.tolist() if n > 1 else ():
            w.u(f, class_map_bits(n))
        k = best_order(ls.coefs.ravel())
        w.u(k, 2)
        for q, clip in zip(ls.coefs, ls.clips.tolist()):
            w.u(clip, 2)
            _write_coefs(w, q, k)
        _write_flags(w, pl.luma.flags)
    for alf, cc, x in zip(pl.chroma, pl.cc, pl.xc):
        if version == VERSION_LUMA:
            w.u(0, 2)  # alf_on, cc_on
            continue
        for part in (alf, cc, x):
            w.u(part is not None, 1)
            if part is not None:
                if part is cc:
                    w.u(len(cc.filt.coefs) == len(CC_TAPS_BIG), 1)  # cc_big
                if part is alf:
                    filt = part.filt if isinstance(part.filt, AltFilter) else AltFilter([part.filt])
                    write_alt(w, filt, lambda w_, f: _write_filter(w_, f, True))
                else:
                    _write_filter(w, part.filt, False)
                _write_flags(w, part.flags)
    return w


def _read_alf(rd: BitReader, chroma_shape: tuple[int, int]) -> Filter | AltFilter:
    """A chroma ALF: ``wiener_chroma.read_alt``'s alternatives (a plain Filter when that is one filter
    without a map)."""
    alt = read_alt(rd, chroma_shape, lambda r: _read_filter(r, len(CHROMA_PAIRS), True))
    return alt.alts[0] if alt.amap is None and len(alt.alts) == 1 else alt


def read_payload(rd: BitReader, luma_shape: tuple[int, int], version: int = VERSION_SET) -> Payload:
    """Parse a filter set (version 5, or 2: without chroma parts) after its version field; PayloadError for
    anything malformed."""
    if version not in (VERSION_LUMA, VERSION_SET):
        raise PayloadError(f"wiener: unsupported payload version {version}")
    ctu_log2 = rd.u(1) + 6
    g = grid(luma_shape, 1 << ctu_log2)
    luma = None
    if rd.u(1):
        shift = rd.u(2) + MIN_SHIFT
        n = rd.u(3) + 1
        cmap = np.zeros(N_CLASSES, np.int64)
        if n > 1:
            cmap = np.array([rd.u(class_map_bits(n)) for _ in range(N_CLASSES)], np.int64)
            if cmap.max() >= n:
                raise PayloadError(f"wiener: class mapped to filter {cmap.max()} of {n}")
        k = rd.u(2)
        clips, coefs = [], []
        for _ in range(n):
            clips.append(rd.u(2))
            coefs.append(_read_coefs(rd, len(LUMA_PAIRS), k, shift))
        luma = Part(LumaSet(shift, np.array(coefs), np.array(clips), cmap), _read_flags(rd, g))
    chroma: list = [None, None]
    cc: list = [None, None]
    xc: list = [None, None]
    chroma_shape = ((luma_shape[0] + 1) // 2, (luma_shape[1] + 1) // 2)
    for i in range(2):
        if version == VERSION_LUMA:
            if rd.u(2):
                raise PayloadError("wiener: a version-2 payload carries no chroma part")
            continue
        chroma[i] = Part(_read_alf(rd, chroma_shape), _read_flags(rd, g)) if rd.u(1) else None
        if rd.u(1):
            n = len(CC_TAPS_BIG) if rd.u(1) else len(CC_TAPS)
            cc[i] = Part(_read_filter(rd, n, False), _read_flags(rd, g))
        xc[i] = Part(_read_filter(rd, len(CHROMA_PAIRS), False), _read_flags(rd, g)) if rd.u(1) else None
    finish(rd)
    return Payload(ctu_log2, luma, chroma, cc, xc)


# ----------------------------------------------------------------------------- period sets (version 3)


def update_tag(update: bytes) -> int:
    """8 bits a version-3 payload carries to name the period's filter set it references."""
    import zlib

    return zlib.crc32(update) & 0xFF


def read_update(update: bytes, luma_shape: tuple[int, int]) -> Payload:
    """A period's filter set (the ``wiener/1+update`` record): a version-5 (or -2) payload whose parts carry
    no CTU flags (on/off per CTU is each frame's choice). PayloadError for anything else."""
    rd = BitReader(update)
    version = rd.u(4)
    if version not in (VERSION_LUMA, VERSION_SET):
        raise PayloadError("wiener: a filter-set update must be a version-5 (or -2) payload")
    pl = read_payload(rd, luma_shape, version)
    if any(p is not None and p.flags is not None for p in parts_of(pl)):
        raise PayloadError("wiener: a filter-set update carries no CTU flags")
    return pl


def parts_of(pl: Payload) -> list:
    """The seven parts in syntax order: luma, U ALF, U CC, U XC, V ALF, V CC, V XC."""
    return [pl.luma, pl.chroma[0], pl.cc[0], pl.xc[0], pl.chroma[1], pl.cc[1], pl.xc[1]]


def with_parts(pl: Payload, parts: list) -> Payload:
    return Payload(pl.ctu_log2, parts[0], [parts[1], parts[4]], [parts[2], parts[5]], [parts[3], parts[6]])


def write_ref(update_pl: Payload, tag: int, parts: list) -> BitWriter:
    """A version-3 payload: this frame uses the period's set ``update_pl``; ``parts`` (seven, syntax order)
    are None (off) or a Part whose flags are this frame's CTU flags (None: on everywhere).

    Syntax: version u(4) = 3, tag u(8), then for each part the set has: on u(1) [CTU flags]."""
    w = BitWriter()
    w.u(VERSION_REF, 4)
    w.u(tag, 8)
    for have, part in zip(parts_of(update_pl), parts):
        if have is None:
            continue
        w.u(part is not None, 1)
        if part is not None:
            _write_flags(w, part.flags)
    return w


def read_ref(rd: BitReader, update: bytes | None, luma_shape: tuple[int, int]) -> Payload:
    """Parse a version-3 payload (after its version) against the update in force; PayloadError when there
    is none, when its tag differs, or for anything malformed."""
    if not update:
        raise PayloadError("wiener: payload references a filter-set update but none is in force")
    tag = rd.u(8)
    if tag != update_tag(update):
        raise PayloadError("wiener: payload references another filter-set update")
    upl = read_update(update, luma_shape)
    g = grid(luma_shape, 1 << upl.ctu_log2)
    parts = []
    for have in parts_of(upl):
        parts.append(Part(have.filt, _read_flags(rd, g)) if have is not None and rd.u(1) else None)
    finish(rd)
    return with_parts(upl, parts)
