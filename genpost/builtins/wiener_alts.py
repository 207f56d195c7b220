"""Encoder side of payload version 5's chroma ALF alternatives (``wiener_chroma.AltFilter``) in period sets.

Why: chroma statistics differ across a picture (a car's window against its interior), and one filter per
plane averages them. Least squares over 33 frames with a per-block choice among 2 ALF filters (or none)
lifts carphone's V bound from +0.28 to +0.56 dB at QP 27, BBB 416x240's from +0.30 to +0.45.

The fit is k-means in Gram space: each block goes to the alternative (or none) with the least error, the
alternatives and the plane's shared CC-ALF and cross-chroma filters are solved again jointly, repeat. The
result is quantised (``wiener_joint.quantise_parts``), measured per block with the decoder's integer
function, and the map chosen by ``SSE + lambda * map bits`` (iterated conditional modes, the map syntax's
exact bits). A plane keeps the alternatives only where the whole costs less than its single filter.
"""

from __future__ import annotations

import numpy as np

from .wiener_alf import CHROMA_PAIRS, Filter, Part, clip_value
from .wiener_bits import grid
from .wiener_chroma import (
    MAP_LOG2,
    MAX_ALTS,
    AltFilter,
    alf_acc,
    candidates,
    cc_acc,
    cc_features,
    cc_taps,
    map_bits,
    symbol_bits,
    xc_acc,
)
from .wiener_fit import ctu_sse, filter_bits, lifted, out_of, solve
from .wiener_joint import best_subset, quantise_parts

MAX_MAP_BLOCKS = 1024  # map sizes with more blocks are not tried (their bits, and the encoder's time)
KMEANS_ROUNDS = 12
ICM_SWEEPS = 3


def _pairs(p: np.ndarray, clip: int) -> list[np.ndarray]:
    """The 5x5 diamond's pair features of a plane, each neighbour difference clipped to +-clip."""
    h, w = p.shape
    q = np.pad(p, 2, mode="edge").astype(np.int32)
    x = q[2:2 + h, 2:2 + w]
    return [np.clip(q[2 + dy:2 + dy + h, 2 + dx:2 + dx + w] - x, -clip, clip)
            + np.clip(q[2 - dy:2 - dy + h, 2 - dx:2 - dx + w] - x, -clip, clip) for dy, dx in CHROMA_PAIRS]


def block_grams(frames, bit_depth: int, level: int, taps, xc: bool, log2: int) -> np.ndarray:
    """Gram matrices of [ALF pairs clipped at ``level``..., CC ``taps``..., other plane's pairs (with
    ``xc``)..., target] per block of ``2^log2`` chroma samples over ``frames`` of (chroma, source int32,
    luma, other chroma): (gy, gx, K+1, K+1)."""
    b = 1 << log2
    total: np.ndarray | float = 0.0
    for c, s, y, other in frames:
        rows = _pairs(c, clip_value(level, bit_depth)) + [fk for _, fk in cc_features(y, c.shape, taps)]
        rows += _pairs(other, 1 << bit_depth) if xc else []
        rows.append(s - c)
        gy, gx = grid(c.shape, b)
        f = np.zeros((len(rows), gy * b, gx * b), np.float32)
        f[:, : c.shape[0], : c.shape[1]] = rows
        blocks = f.reshape(len(rows), gy, b, gx, b).transpose(1, 3, 0, 2, 4).reshape(gy, gx, len(rows), b * b)
        total = total + (blocks @ blocks.swapaxes(-1, -2)).astype(np.float64)
    assert isinstance(total, np.ndarray)
    return total


def coarser(g: np.ndarray, factor: int) -> np.ndarray:
    """Block statistics summed over ``factor`` x ``factor`` groups (the ragged edge included)."""
    gy, gx = g.shape[:2]
    out = np.zeros((-(-gy // factor) * factor, -(-gx // factor) * factor, *g.shape[2:]))
    out[:gy, :gx] = g
    return out.reshape(out.shape[0] // factor, factor, out.shape[1] // factor, factor, *g.shape[2:]).sum(axis=(1, 3))


def sse_of(g: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The squared error of coefficients ``c`` on each Gram matrix of ``g`` (..., K+1, K+1)."""
    k = len(c)
    return g[..., k, k] - 2 * g[..., :k, k] @ c + np.einsum("...ij,i,j->...", g[..., :k, :k], c, c)


def extended_gram(g: np.ndarray, assign: np.ndarray, n: int, na: int) -> np.ndarray:
    """The Gram matrix of [alternative 1..n's first ``na`` features..., shared features..., target] for
    blocks ``g`` (nb, K+1, K+1) assigned to 0 (no alternative) .. n."""
    k = g.shape[-1] - 1
    shared = np.arange(na, k + 1)  # the shared features and the target
    out = np.zeros((n * na + k - na + 1,) * 2)
    tail = n * na + np.arange(k - na + 1)
    for v in range(n + 1):
        sub = g[assign == v].sum(axis=0)
        if not np.ndim(sub):
            continue
        src = shared if v == 0 else np.r_[np.arange(na), shared]
        dst = tail if v == 0 else np.r_[(v - 1) * na + np.arange(na), tail]
        out[np.ix_(dst, dst)] += sub[np.ix_(src, src)]
    return out


def kmeans(g: np.ndarray, n: int, na: int, rounds: int = KMEANS_ROUNDS) -> np.ndarray:
    """Blocks ``g`` (nb, K+1, K+1) assigned to 0 (none) .. n alternatives of the first ``na`` features,
    the others shared: started from quantiles of the single filter's gain, then refitted until stable."""
    nb, k = len(g), g.shape[-1] - 1
    gain = g[:, k, k] - sse_of(g, solve(g.sum(axis=0))[0])
    assign = np.empty(nb, np.int64)
    order = np.argsort(gain)
    for v in range(n):
        assign[order[v * nb // n:(v + 1) * nb // n]] = v + 1
    for _ in range(rounds):
        x = solve(extended_gram(g, assign, n, na))[0]
        coefs = [np.r_[np.zeros(na), x[n * na:]]] + [np.r_[x[v * na:(v + 1) * na], x[n * na:]] for v in range(n)]
        new = np.stack([sse_of(g, c) for c in coefs]).argmin(axis=0)
        if np.array_equal(new, assign):
            break
        assign = new
    return assign


def choose_map(table: np.ndarray, lam: float, n: int) -> np.ndarray:
    """The map (gy, gx) of values 0..n minimising ``sum table[value] + lam * map bits`` by iterated
    conditional modes; ``table`` (n+1, gy, gx) holds each value's SSE per block."""
    m = table.argmin(axis=0)
    gy, gx = m.shape

    def local(i: int, j: int) -> int:  # the bits of the symbols block (i, j)'s value changes
        bits = 0
        for a, b in ((i, j), (i, j + 1), (i + 1, j)):
            if a < gy and b < gx:
                bits += symbol_bits(candidates(m, a, b, n).index(int(m[a, b])), n + 1)
        return bits

    for _ in range(ICM_SWEEPS):
        changed = False
        for i in range(gy):
            for j in range(gx):
                old = int(m[i, j])
                costs = []
                for v in range(n + 1):
                    m[i, j] = v
                    costs.append(table[v, i, j] + lam * local(i, j))
                m[i, j] = int(np.argmin(costs))
                changed |= int(m[i, j]) != old
        if not changed:
            break
    return m


def alt_bits(f) -> int:
    """Version-5 bits of a chroma ALF (a Filter or an AltFilter) after its on flag, CTU flags excluded."""
    if not isinstance(f, AltFilter):
        return 2 + filter_bits(f, True) + 1
    n = len(f.alts)
    bits = 2 + sum(filter_bits(a, True) for a in f.alts) + (n == 1)
    return bits + (0 if f.amap is None else 2 + map_bits(f.amap, n))


def parts_bits(parts: list) -> int:
    """Version-5 bits of a chroma plane's [ALF, CC, cross-chroma] parts, all on everywhere."""
    alf, cc, xc = parts
    bits = 3 + (alf is not None) + (cc is not None) + (xc is not None)  # on flags, all_on CTU flags
    bits += 0 if alf is None else alt_bits(alf.filt)
    bits += 0 if cc is None else 1 + filter_bits(cc.filt, False)  # with cc_big
    return bits + (0 if xc is None else filter_bits(xc.filt, False))


def _measure(frames, alts: list[Filter], shared: list, bit_depth: int, b: int) -> np.ndarray:
    """Per-block SSE (n+1, gy, gx) summed over ``frames`` with no ALF (0) or alternative v, the shared
    [CC, cross-chroma] filters on, through the decoder's integer functions."""
    maxv = (1 << bit_depth) - 1
    cc, xc = shared
    table: np.ndarray | float = 0.0
    for c, s, y, other in frames:
        state = lifted(c)
        if cc is not None:
            state = state + cc_acc(y, c.shape, cc)
        if xc is not None:
            state = state + xc_acc(other, xc, bit_depth)
        outs = [state] + [state + alf_acc(c, a, bit_depth) for a in alts]
        table = table + np.stack([ctu_sse(out_of(o, maxv), s, b) for o in outs]).astype(np.float64)
    assert isinstance(table, np.ndarray)
    return table


def fit_alternatives(frames, parts: list, bit_depth: int, lam: float, log2: int, n: int, grams: np.ndarray):
    """[ALF AltFilter, CC, cross-chroma] parts with ``n`` alternatives on a map of ``2^log2`` blocks, and
    their (SSE, J) over ``frames``; None when no alternative survives quantisation. ``grams``: the plane's
    ``block_grams`` at ``log2``."""
    level = parts[0].filt.clip if parts[0] is not None else 0
    n_cc = 0 if parts[1] is None else len(parts[1].filt.coefs)
    na, xc = len(CHROMA_PAIRS), parts[2] is not None
    g = grams.reshape(-1, *grams.shape[2:])
    assign = kmeans(g, n, na)
    sizes = [na] * n + ([n_cc] if n_cc else []) + ([na] if xc else [])
    filters = quantise_parts(extended_gram(g, assign, n, na), sizes, lam, [level] * n + [None] * (len(sizes) - n))
    alts = [f for f in filters[:n] if f is not None]
    rest = filters[n:]
    shared = [rest.pop(0) if n_cc else None, rest.pop(0) if xc else None]
    if not alts:
        return None
    table = _measure(frames, alts, shared, bit_depth, 1 << log2)
    amap = choose_map(table, lam, len(alts))
    sse = float(np.take_along_axis(table, amap[None], axis=0).sum())
    out = [Part(AltFilter(alts, amap, log2)), *(None if f is None else Part(f) for f in shared)]
    return out, sse, sse + lam * parts_bits(out)


def best_alternatives(frames, parts: list, bit_depth: int, lam: float) -> tuple[list, float, float]:
    """A chroma plane's best [ALF, CC, cross-chroma] parts by J over ``frames``: ``parts`` (fitted with one
    ALF filter, all on) or alternatives on each map size up to ``MAX_MAP_BLOCKS`` blocks, 1..4 of them."""
    filters = [p.filt if p is not None else None for p in parts]
    kept, sse, _ = best_subset(frames, filters, bit_depth, lam, 64)
    best = (kept, sse, sse + lam * parts_bits(kept))
    level = parts[0].filt.clip if parts[0] is not None else 0
    taps = cc_taps(len(parts[1].filt.coefs)) if parts[1] is not None else ()
    shape = frames[0][0].shape
    fine = None
    for log2 in MAP_LOG2:
        if np.prod(grid(shape, 1 << log2)) > MAX_MAP_BLOCKS:
            continue
        if fine is None:
            fine = (log2, block_grams(frames, bit_depth, level, taps, parts[2] is not None, log2))
        grams = coarser(fine[1], 1 << (log2 - fine[0]))
        for n in range(1, MAX_ALTS + 1):
            got = fit_alternatives(frames, parts, bit_depth, lam, log2, n, grams)
            if got is not None and got[2] < best[2]:
                best = got
    return best


def improve_alternatives(pairs, chroma: list, sums: list, bit_depth: int, lam: float, scale: float = 1.0) -> tuple[list, list]:
    """``improve_period``'s chroma parts and per-plane (SSE on, SSE off), each plane's replaced by ALF
    alternatives where they cost less at ``scale * lam``."""
    chroma, sums = list(chroma), list(sums)
    for plane in (1, 2):
        parts = chroma[3 * plane - 3: 3 * plane]
        if parts[0] is None:
            continue
        frames = [(d.planes[plane], s.planes[plane].astype(np.int32), d.planes[0], d.planes[3 - plane]) for s, d in pairs]
        new, sse, _ = best_alternatives(frames, parts, bit_depth, scale * lam)
        if isinstance(new[0].filt if new[0] is not None else None, AltFilter):
            chroma[3 * plane - 3: 3 * plane] = new
            sums[plane] = (sse, sums[plane][1])
    return chroma, sums

