"""Encoder side of wiener's payload: statistics, class merging, quantisation, CTU flags.

Everything is chosen by ``SSE + lambda * bits``; every SSE that decides something is measured on the
output of ``wiener_alf``'s integer functions (the decoder's), so the encoder's numbers are exact. Chroma is
fitted for one rounding per plane (``wiener_chroma``): a plane's state is an int32 sum in 2^-8 units that
includes the plane (``lifted``), each part adds its unrounded sum, and the output rounds once (``out_of``).
Least-squares statistics use every other row and column on frames above ``SUBSAMPLE_PIXELS``.
"""

from __future__ import annotations

import numpy as np

from .wiener_alf import (
    CC_TAPS,
    CC_TAPS_BIG,
    CHROMA_PAIRS,
    LUMA_PAIRS,
    MAX_FILTERS,
    MIN_SHIFT,
    N_CLASSES,
    PERM,
    Filter,
    LumaSet,
    Part,
    class_map_bits,
    classify,
    clip_value,
    coef_bits,
    luma_delta,
)
from .wiener_bits import BitWriter, grid, write_flags
from .wiener_chroma import ACC_SHIFT, alf_acc, cc_acc, cc_features, xc_acc

SUBSAMPLE_PIXELS = 200_000
# clip indices the encoder tries (index 1, +-2^(B-2), almost never clips and costs a fourth of the
# statistics); the statistics' first axis follows this tuple
CLIP_LEVELS = (0, 2, 3)
SHIFTS = range(MIN_SHIFT, MIN_SHIFT + 4)
ROUGH_FILTER_BITS = 60  # typical bits of one quantised luma filter, to rank filter counts before quantising
QUANTISED_COUNTS = 3  # filter counts quantised per frame
INVERSE_PERM = np.argsort(PERM, axis=1)
# index arrays that permute a Gram matrix of [features..., target] into canonical orientation
INVERSE_GRAM = [np.ix_(np.r_[inv, len(inv)], np.r_[inv, len(inv)]) for inv in INVERSE_PERM]


# ----------------------------------------------------------------------------- statistics


def _gram(f: np.ndarray) -> np.ndarray:
    return f @ f.T


def phases(h: int, w: int) -> list[tuple[int, int, int]]:
    """Sampling grids (row phase, column phase, step): every sample, or on large planes the quincunx
    (even rows and columns, then odd ones), half the work with every row and column parity kept."""
    return [(0, 0, 1)] if h * w <= SUBSAMPLE_PIXELS else [(0, 0, 2), (1, 1, 2)]


def sampled_pairs(p: np.ndarray, r: int, shape: tuple[int, int], phase, pairs, take: np.ndarray):
    """(a, b) neighbour differences of each pair on one sampling grid of ``shape`` (see ``phases``),
    at the flat positions ``take`` of that grid (int32)."""
    hh, ww = shape
    oy, ox, step = phase
    x = p[r + oy:r + hh:step, r + ox:r + ww:step].ravel()[take]
    out = []
    for dy, dx in pairs:
        a = p[r + oy + dy:r + hh + dy:step, r + ox + dx:r + ww + dx:step].ravel()[take] - x
        b = p[r + oy - dy:r + hh - dy:step, r + ox - dx:r + ww - dx:step].ravel()[take] - x
        out.append((a, b))
    return out


def _clipped_matrix(diffs, target: np.ndarray, clip: int, bit_depth: int) -> np.ndarray:
    """Rows f_k = clip(a) + clip(b) for each pair, then the target; float64 for the Gram products."""
    f = np.empty((len(diffs) + 1, len(target)))
    for k, (a, b) in enumerate(diffs):
        if clip >= 1 << bit_depth:
            f[k] = a + b
        else:
            f[k] = np.clip(a, -clip, clip) + np.clip(b, -clip, clip)
    f[-1] = target
    return f


def luma_stats(x, s, classes, bit_depth: int, block_on=None) -> np.ndarray:
    """Gram matrices of [canonical features..., target] per clip level and class: (4, 25, 13, 13).

    Features are permuted into each block's canonical orientation (its transform), so that one
    least-squares filter per class is what the decoder applies through ``PERM``.
    """
    cls, tr = classes
    h4, w4 = cls.shape
    h, w = x.shape
    hh, ww = 4 * h4, 4 * w4
    p = np.pad(x, ((3, 3 + hh - h), (3, 3 + ww - w)), mode="edge").astype(np.int32)
    sp = np.pad(s, ((0, hh - h), (0, ww - w)), mode="edge").astype(np.int32)
    block_key = (cls * 4 + tr).ravel()
    k = len(LUMA_PAIRS)
    out = np.zeros((len(CLIP_LEVELS), N_CLASSES, k + 1, k + 1))
    used = 0
    for phase in phases(h, w):
        oy, ox, step = phase
        rows, cols = np.arange(oy, hh, step), np.arange(ox, ww, step)
        use = (rows[:, None] < h) & (cols[None, :] < w)
        if block_on is not None:
            use &= block_on[rows[:, None] // 4, cols[None, :] // 4]
        take = np.flatnonzero(use.ravel())
        keys = block_key[(rows // 4)[:, None] * w4 + (cols // 4)[None, :]].ravel()[take]
        order = np.argsort(keys, kind="stable")
        take, keys = take[order], keys[order]  # grouped by (class, transform)
        used += len(take)
        bounds = np.r_[0, np.cumsum(np.bincount(keys, minlength=4 * N_CLASSES))]
        target = sp[oy::step, ox::step].ravel()[take] - p[3 + oy:3 + hh:step, 3 + ox:3 + ww:step].ravel()[take]
        diffs = sampled_pairs(p, 3, (hh, ww), phase, LUMA_PAIRS, take)
        for li, level in enumerate(CLIP_LEVELS):
            f = _clipped_matrix(diffs, target, clip_value(level, bit_depth), bit_depth)
            for g in np.flatnonzero(np.diff(bounds)):
                inv = INVERSE_GRAM[g % 4]
                out[li, g // 4] += _gram(f[:, bounds[g]:bounds[g + 1]])[inv]
    valid = min(h, hh) * min(w, ww)
    return out * (valid / max(used, 1) if used and used < valid else 1)


def plane_stats(x, s, pairs, r: int, bit_depth: int) -> np.ndarray:
    """Gram matrices of [features..., target] of one whole plane per clip level: (4, K+1, K+1)."""
    h, w = x.shape
    p = np.pad(x, r, mode="edge").astype(np.int32)
    out = 0
    for phase in phases(h, w):
        oy, ox, step = phase
        target = (s[oy::step, ox::step].astype(np.int32) - x[oy::step, ox::step]).ravel()
        diffs = sampled_pairs(p, r, (h, w), phase, pairs, np.arange(target.size))
        out = out + np.array([_gram(_clipped_matrix(diffs, target, clip_value(level, bit_depth), bit_depth))
                              for level in CLIP_LEVELS])
    return out


def cc_stats(y, target, block_mask=None, taps=CC_TAPS) -> np.ndarray:
    f = np.stack([fk.ravel() for _, fk in cc_features(y, target.shape, taps)] + [target.ravel()]).astype(np.float64)
    if block_mask is not None:
        f = f[:, block_mask.ravel()]
    return _gram(f)


# ----------------------------------------------------------------------------- least squares


def solve(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients, remaining error) of the least-squares fits for Gram matrices (..., K+1, K+1)."""
    k = g.shape[-1] - 1
    rmat, rvec = g[..., :k, :k], g[..., :k, k]
    ridge = 1e-6 * (np.trace(rmat, axis1=-2, axis2=-1) / k + 1.0)
    c = np.linalg.solve(rmat + ridge[..., None, None] * np.eye(k), rvec[..., None])[..., 0]
    return c, g[..., k, k] - np.einsum("...k,...k->...", c, rvec)


def merge_classes(stats: np.ndarray) -> list[np.ndarray]:
    """Greedy merging of the 25 classes; element n-1 is the class -> filter map with n filters."""
    groups = [[c] for c in range(N_CLASSES)]
    g = stats.transpose(1, 0, 2, 3).copy()  # (groups, levels, K+1, K+1)
    err = solve(g)[1].min(axis=1)
    maps = {}
    while True:
        n = len(groups)
        if n <= MAX_FILTERS:
            cmap = np.zeros(N_CLASSES, np.int64)
            for i, members in enumerate(groups):
                cmap[members] = i
            maps[n] = cmap
        if n == 1:
            break
        i, j = np.triu_indices(n, 1)
        merged = solve(g[i] + g[j])[1].min(axis=1)
        best = int(np.argmin(merged - err[i] - err[j]))
        a, b = int(i[best]), int(j[best])
        groups[a] += groups[b]
        g[a] += g[b]
        err[a] = merged[best]
        del groups[b]
        g = np.delete(g, b, axis=0)
        err = np.delete(err, b)
    return [maps[n] for n in range(1, MAX_FILTERS + 1)]


_COEF_BITS = np.stack([coef_bits(np.arange((1 << (MIN_SHIFT + 3)) + 2), o) for o in range(4)])  # [order, |c|]


def quantise(g: np.ndarray, shift: int, lam: float) -> tuple[np.ndarray, float]:
    """Integer coefficients for one Gram matrix at ``shift``, and their estimated ``dSSE + lam*bits``.

    Rounded least squares, then a greedy +-1 descent on the estimate (the quadratic error change; the
    caller measures the real integer SSE).
    """
    k = g.shape[-1] - 1
    rmat, rvec = g[:k, :k], g[:k, k]
    c = solve(g)[0]
    scale = 1 << shift
    steps = np.concatenate([np.eye(k, dtype=np.int64), -np.eye(k, dtype=np.int64)])

    def cost(qs):
        cf = qs / scale
        mags = np.minimum(np.abs(qs), len(_COEF_BITS[0]) - 1)
        bits = _COEF_BITS[:, mags].sum(axis=-1).min(axis=0)
        dist = np.einsum("ij,jk,ik->i", cf, rmat, cf) - 2 * cf @ rvec
        return np.where(mags.max(axis=1) <= scale, dist + lam * bits, np.inf)

    q = np.clip(np.round(c * scale), -scale, scale).astype(np.int64)
    cur = cost(q[None])[0]
    for _ in range(3 * k):
        trials = q + steps
        tc = cost(trials)
        i = int(tc.argmin())
        if tc[i] >= cur:
            break
        q, cur = trials[i], tc[i]
    return q, float(cur)


# ----------------------------------------------------------------------------- exact SSE per CTU


def ctu_sse(out: np.ndarray, s: np.ndarray, ctu: int) -> np.ndarray:
    d = out.astype(np.int64) - s
    d *= d
    gy, gx = grid(d.shape, ctu)
    d = np.pad(d, ((0, gy * ctu - d.shape[0]), (0, gx * ctu - d.shape[1])))
    return d.reshape(gy, ctu, gx, ctu).sum(axis=(1, 3))


def flags_bits(flags: np.ndarray | None) -> int:
    if flags is None:
        return 1
    w = BitWriter()
    write_flags(w, flags)
    return 1 + len(w)


def choose_flags(on: np.ndarray, off: np.ndarray, lam: float, allow: bool = True):
    """(flags or None for all on, SSE, flag bits) minimising SSE + lam * flag bits."""
    best = (None, float(on.sum()), 1)
    if allow:
        flags = on < off
        if flags.any() and not flags.all():
            sse, bits = float(np.where(flags, on, off).sum()), flags_bits(flags)
            if sse + lam * bits < best[1] + lam * best[2]:
                best = (flags, sse, bits)
    return best


# ----------------------------------------------------------------------------- per-component fits


def _clip_out(x: np.ndarray, delta: np.ndarray, max_value: int) -> np.ndarray:
    return np.clip(delta + x, 0, max_value)


def lifted(c: np.ndarray) -> np.ndarray:
    """A chroma plane as the int32 state of chroma fitting: its samples in 2^-8 units."""
    return c.astype(np.int32) << ACC_SHIFT


def out_of(state: np.ndarray, max_value: int) -> np.ndarray:
    """The decoder's output for a chroma state (plane plus part sums, 2^-8 units): rounded once, clipped."""
    return np.clip((state + (1 << (ACC_SHIFT - 1))) >> ACC_SHIFT, 0, max_value)


def residual(s: np.ndarray, state: np.ndarray) -> np.ndarray:
    """What is left to correct: source minus the unrounded state (float64, the fits' target)."""
    return s - state / float(1 << ACC_SHIFT)


def luma_set_bits(ls: LumaSet) -> int:
    n = len(ls.coefs)
    coef = min(int(coef_bits(ls.coefs.ravel(), o).sum()) for o in range(4))
    return 2 + 3 + (N_CLASSES * class_map_bits(n) if n > 1 else 0) + 2 + 2 * n + coef


def filter_bits(f: Filter, with_clip: bool) -> int:
    return 4 + 2 * with_clip + min(int(coef_bits(f.coefs, o).sum()) for o in range(4))


def _quantise_set(stats: np.ndarray, cmap: np.ndarray, lam: float) -> tuple[LumaSet | None, float]:
    n = int(cmap.max()) + 1
    groups = [stats[:, cmap == i].sum(axis=1) for i in range(n)]  # each (levels, K+1, K+1)
    levels = [int(np.argmin(solve(g)[1])) for g in groups]  # indices into CLIP_LEVELS
    best = None
    for shift in SHIFTS:
        qs, est = [], 0.0
        for g, lv in zip(groups, levels):
            q, c = quantise(g[lv], shift, lam)
            qs.append(q)
            est += c
        ls = LumaSet(shift, np.array(qs), np.array([CLIP_LEVELS[lv] for lv in levels]), cmap)
        if not ls.coefs.any():
            continue
        est += lam * (luma_set_bits(ls) - sum(min(int(coef_bits(q, o).sum()) for o in range(4)) for q in qs))
        if best is None or est < best[1]:
            best = (ls, est)
    return best if best is not None else (None, 0.0)


class Fit:
    """One component's choice: the filter (None: off), per-CTU SSE on and off, its syntax bits."""

    def __init__(self, filt, on: np.ndarray | None, off: np.ndarray, bits: int, delta=None) -> None:
        self.filt, self.on, self.off, self.bits, self.delta = filt, on, off, bits, delta

    def decide(self, lam: float, allow_flags: bool = True):
        """(J, Part or None, SSE grid in force): off costs its on-flag bit only."""
        off = (float(self.off.sum()) + lam, None, self.off)
        if self.filt is None:
            return off
        flags, sse, fbits = choose_flags(self.on, self.off, lam, allow_flags)
        j = sse + lam * (1 + self.bits + fbits)
        if j >= off[0]:
            return off
        return j, Part(self.filt, flags), self.on if flags is None else np.where(flags, self.on, self.off)


def fit_luma(x, s, bit_depth: int, lam: float, ctu: int, candidates: int = 2) -> Fit:
    classes = classify(x, bit_depth)
    maxv = (1 << bit_depth) - 1
    off = ctu_sse(x, s, ctu)
    stats = luma_stats(x, s, classes, bit_depth)
    if stats[0, :, -1, -1].sum() == 0:
        return Fit(None, None, off, 0)
    maps = merge_classes(stats)
    # rank filter counts by unquantised error + a rough rate, then quantise only the best few
    rough = [sum(solve(stats[:, cmap == i].sum(axis=1))[1].min() for i in range(n))
             + lam * (N_CLASSES * class_map_bits(n) + n * ROUGH_FILTER_BITS) for n, cmap in enumerate(maps, 1)]
    sets = [_quantise_set(stats, maps[n], lam) for n in np.argsort(rough)[:QUANTISED_COUNTS]]
    sets = sorted((e, i, ls) for i, (ls, e) in enumerate(sets) if ls is not None)[:candidates]
    best = None
    for _, _, ls in sets:
        fit = _exact_luma(x, s, ls, bit_depth, classes, off, ctu, maxv)
        if best is None or fit.decide(lam)[0] < best.decide(lam)[0]:
            best = fit
    if best is None:
        return Fit(None, None, off, 0)
    part = best.decide(lam)[1]
    if part is not None and part.flags is not None:  # refit on the CTUs that keep the filter
        on_blocks = _block_flags(part.flags, ctu, classes[0].shape)
        ls, _ = _quantise_set(luma_stats(x, s, classes, bit_depth, on_blocks), best.filt.class_map, lam)
        if ls is not None:
            refit = _exact_luma(x, s, ls, bit_depth, classes, off, ctu, maxv)
            if refit.decide(lam)[0] < best.decide(lam)[0]:
                best = refit
    return best


def _block_flags(flags: np.ndarray, ctu: int, shape4: tuple[int, int]) -> np.ndarray:
    f = ctu // 4
    return np.repeat(np.repeat(flags, f, axis=0), f, axis=1)[: shape4[0], : shape4[1]]


def _exact_luma(x, s, ls, bit_depth, classes, off, ctu, maxv) -> Fit:
    d = luma_delta(x, ls, bit_depth, classes)
    return Fit(ls, ctu_sse(_clip_out(x, d, maxv), s, ctu), off, luma_set_bits(ls), d)


def fit_filter(g: np.ndarray, lam: float, clip: int | None) -> Filter | None:
    best = None
    for shift in SHIFTS:
        q, est = quantise(g, shift, lam)
        if q.any() and (best is None or est < best[1]):
            best = (Filter(shift, q, clip or 0), est)
    return None if best is None else best[0]


def fit_chroma(c, s, bit_depth: int, lam: float, ctu: int) -> Fit:
    off = ctu_sse(c, s, ctu)
    st = plane_stats(c, s, CHROMA_PAIRS, 2, bit_depth)
    level = int(np.argmin(solve(st)[1]))
    f = fit_filter(st[level], lam, CLIP_LEVELS[level])
    if f is None:
        return Fit(None, None, off, 0)
    d = alf_acc(c, f, bit_depth)
    return Fit(f, ctu_sse(out_of(lifted(c) + d, (1 << bit_depth) - 1), s, ctu), off, filter_bits(f, True), d)


def xc_stats(other, target, bit_depth: int) -> np.ndarray:
    """Gram matrix of [the other chroma plane's pair features..., target] (no clipping)."""
    p = np.pad(other, 2, mode="edge").astype(np.int32)
    diffs = sampled_pairs(p, 2, other.shape, (0, 0, 1), CHROMA_PAIRS, np.arange(other.size))
    return _gram(_clipped_matrix(diffs, target.ravel(), 1 << bit_depth, bit_depth))


def fit_xc(other, base: np.ndarray, s, bit_depth: int, lam: float, ctu: int) -> Fit:
    """Cross-chroma filter on top of ``base`` (the state: chroma plus the sums chosen before it, ``lifted``):
    the other chroma plane's high-pass predicts what is left of this plane's error."""
    maxv = (1 << bit_depth) - 1
    off = ctu_sse(out_of(base, maxv), s, ctu)
    f = fit_filter(xc_stats(other, residual(s, base), bit_depth), lam, None)
    if f is None:
        return Fit(None, None, off, 0)
    d = xc_acc(other, f, bit_depth)
    return Fit(f, ctu_sse(out_of(base + d, maxv), s, ctu), off, filter_bits(f, False), d)


def fit_cc(y, base: np.ndarray, s, bit_depth: int, lam: float, ctu: int, big: bool = True) -> Fit:
    """CC-ALF on top of ``base`` (the state: the chroma plane plus the chosen chroma ALF sum, ``lifted``):
    VVC's 7-tap shape and, with ``big``, the 23-tap one; the better by ``SSE + lam * bits``."""
    maxv = (1 << bit_depth) - 1
    off = ctu_sse(out_of(base, maxv), s, ctu)
    best = Fit(None, None, off, 0)
    target = residual(s, base)
    for taps in (CC_TAPS, CC_TAPS_BIG) if big else (CC_TAPS,):
        f = fit_filter(cc_stats(y, target, taps=taps), lam, None)
        if f is None:
            continue
        d = cc_acc(y, base.shape, f)
        fit = Fit(f, ctu_sse(out_of(base + d, maxv), s, ctu), off, filter_bits(f, False) + (taps is CC_TAPS_BIG), d)
        if best.filt is None or fit.decide(lam)[0] < best.decide(lam)[0]:
            best = fit
    return best


# ----------------------------------------------------------------------------- period filter sets


def _set_gain(fits) -> tuple[float, float]:
    """(SSE on, SSE off) summed over frames, the part on everywhere."""
    return sum(float(f.on.sum()) for f in fits), sum(float(f.off.sum()) for f in fits)


def fit_period(pairs, bit_depth: int, lam: float, ctu: int):
    """A filter set for a period from sample (source, decoded) frames: statistics summed over the samples,
    each part kept when ``SSE_on + lam * bits < SSE_off`` summed over them (``lam`` already divided by the
    frames each sample stands for). Parts are on everywhere (CTU flags are each frame's choice).

    Returns (luma Part | None, [U ALF, U CC, V ALF, V CC] Parts | None, per-plane (SSE on, SSE off) sums)."""
    from .wiener_alf import Part

    maxv = (1 << bit_depth) - 1
    ys = [d.planes[0] for _, d in pairs]
    srcs = [[p.astype(np.int32) for p in s.planes] for s, _ in pairs]
    # luma
    classes = [classify(y, bit_depth) for y in ys]
    stats = sum(luma_stats(y, s[0], c, bit_depth) for y, s, c in zip(ys, srcs, classes))
    offs = [ctu_sse(y, s[0], ctu) for y, s in zip(ys, srcs)]
    luma, sums = None, []
    best = (sum(float(o.sum()) for o in offs), None)
    if stats[0, :, -1, -1].sum() > 0:
        maps = merge_classes(stats)
        rough = [sum(solve(stats[:, cmap == i].sum(axis=1))[1].min() for i in range(n))
                 + lam * (N_CLASSES * class_map_bits(n) + n * ROUGH_FILTER_BITS) for n, cmap in enumerate(maps, 1)]
        for n in np.argsort(rough)[:QUANTISED_COUNTS]:
            ls, _ = _quantise_set(stats, maps[n], lam)
            if ls is None:
                continue
            fits = [_exact_luma(y, s[0], ls, bit_depth, c, o, ctu, maxv) for y, s, c, o in zip(ys, srcs, classes, offs)]
            on, _ = _set_gain(fits)
            if on + lam * (1 + luma_set_bits(ls) + 1) < best[0]:
                best = (on + lam * (1 + luma_set_bits(ls) + 1), ls)
        luma = None if best[1] is None else Part(best[1])
    if luma is not None:
        outs = [_clip_out(y, luma_delta(y, luma.filt, bit_depth, c), maxv) for y, c in zip(ys, classes)]
        sums.append((sum(float(ctu_sse(o, s[0], ctu).sum()) for o, s in zip(outs, srcs)), sum(float(o.sum()) for o in offs)))
    else:
        sums.append((sum(float(o.sum()) for o in offs),) * 2)
    chroma = []
    for plane in (1, 2):
        cs = [d.planes[plane] for _, d in pairs]
        ss = [s[plane] for s in srcs]
        coff = sum(float(ctu_sse(c, s, ctu // 2).sum()) for c, s in zip(cs, ss))
        st = sum(plane_stats(c, s, CHROMA_PAIRS, 2, bit_depth) for c, s in zip(cs, ss))
        level = int(np.argmin(solve(st)[1]))
        f = fit_filter(st[level], lam, CLIP_LEVELS[level])
        alf, bases = None, [lifted(c) for c in cs]
        if f is not None:
            ds = [alf_acc(c, f, bit_depth) for c in cs]
            on = sum(float(ctu_sse(out_of(b + d, maxv), s, ctu // 2).sum()) for b, d, s in zip(bases, ds, ss))
            if on + lam * (1 + filter_bits(f, True) + 1) < coff:
                alf = Part(f)
                bases = [b + d for b, d in zip(bases, ds)]
        base_sse = sum(float(ctu_sse(out_of(b, maxv), s, ctu // 2).sum()) for b, s in zip(bases, ss))
        cc, out_sse, cc_ds, cc_j = None, base_sse, None, base_sse
        for taps in (CC_TAPS, CC_TAPS_BIG):
            g = sum(cc_stats(y, residual(s, b), taps=taps) for y, s, b in zip(ys, ss, bases))
            f = fit_filter(g, lam, None)
            if f is None:
                continue
            ds = [cc_acc(y, b.shape, f) for y, b in zip(ys, bases)]
            on = sum(float(ctu_sse(out_of(b + d, maxv), s, ctu // 2).sum()) for d, b, s in zip(ds, bases, ss))
            j = on + lam * (1 + filter_bits(f, False) + (taps is CC_TAPS_BIG) + 1)
            if j < cc_j:
                cc, out_sse, cc_ds, cc_j = Part(f), on, ds, j
        if cc is not None:
            bases = [b + d for b, d in zip(bases, cc_ds)]
        others = [d.planes[3 - plane] for _, d in pairs]
        g = sum(xc_stats(o, residual(s, b), bit_depth) for o, s, b in zip(others, ss, bases))
        f = fit_filter(g, lam, None)
        xc = None
        if f is not None:
            on = sum(float(ctu_sse(out_of(b + xc_acc(o, f, bit_depth), maxv), s, ctu // 2).sum())
                     for o, b, s in zip(others, bases, ss))
            if on + lam * (1 + filter_bits(f, False) + 1) < out_sse:
                xc, out_sse = Part(f), on
        chroma += [alf, cc, xc]
        sums.append((out_sse, coff))
    return luma, chroma, sums
