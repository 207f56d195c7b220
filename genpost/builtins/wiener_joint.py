"""Joint least squares for a chroma plane's three filters (ALF, CC-ALF, cross-chroma) of a period set.

Fitting each filter on what the ones before it leave misses what the three explain together: on carphone
at QP 37 (33 frames, unquantised) the V bound is +0.42 dB fitted in turn and +0.61 dB fitted jointly. The
joint solution is quantised one filter at a time, the ones not yet quantised solved again given those that
are (a conditional Gram matrix), and ``wiener_fit.fit_period`` keeps whichever of the two fits costs less
by ``SSE + lambda * bits`` on the decoder's output. Encoder only: the payload syntax does not change.
"""

from __future__ import annotations

import numpy as np

from .wiener_alf import (
    CC_TAPS,
    CC_TAPS_BIG,
    CHROMA_PAIRS,
    Filter,
    Part,
    clip_value,
)
from .wiener_chroma import alf_acc, cc_acc, cc_features, xc_acc
from .wiener_fit import ctu_sse, filter_bits, fit_filter, flags_bits, lifted, out_of, phases, sampled_pairs, solve

# the parts' feature counts in the joint vector: ALF pairs, CC taps (6 or 23), cross-chroma pairs
ALF_K = XC_K = len(CHROMA_PAIRS)


def _pair_rows(p: np.ndarray, shape: tuple[int, int], phase, clip: int) -> list[np.ndarray]:
    diffs = sampled_pairs(p, 2, shape, phase, CHROMA_PAIRS, np.arange(_count(shape, phase)))
    return [np.clip(a, -clip, clip) + np.clip(b, -clip, clip) for a, b in diffs]


def _count(shape: tuple[int, int], phase) -> int:
    oy, ox, step = phase
    return len(range(oy, shape[0], step)) * len(range(ox, shape[1], step))


def joint_gram(frames, bit_depth: int, level: int, taps) -> np.ndarray:
    """Gram matrix of [ALF pairs clipped at ``level``..., CC taps..., other plane's pairs..., target] summed
    over ``frames`` of (chroma, source, luma, other chroma), every sample (quincunx on large planes)."""
    clip, free = clip_value(level, bit_depth), 1 << bit_depth
    grams = []
    for c, s, y, other in frames:
        shape = c.shape
        pc = np.pad(c, 2, mode="edge").astype(np.int32)
        po = np.pad(other, 2, mode="edge").astype(np.int32)
        cc = [fk for _, fk in cc_features(y, shape, taps)]
        for phase in phases(*shape):
            oy, ox, step = phase
            rows = _pair_rows(pc, shape, phase, clip)
            rows += [fk[oy::step, ox::step].ravel() for fk in cc]
            rows += _pair_rows(po, shape, phase, free)
            rows.append((s[oy::step, ox::step].astype(np.int32) - c[oy::step, ox::step]).ravel())
            f = np.array(rows, np.float64)
            grams.append(f @ f.T)
    return np.sum(grams, axis=0)


def _conditional(g: np.ndarray, part: np.ndarray, fixed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The Gram matrix of [part's features..., target - fixed features . values]."""
    t = g.shape[0] - 1
    gpp = g[np.ix_(part, part)]
    gpt = g[part, t] - g[np.ix_(part, fixed)] @ values
    gtt = g[t, t] - 2 * values @ g[fixed, t] + values @ g[np.ix_(fixed, fixed)] @ values
    out = np.empty((len(part) + 1, len(part) + 1))
    out[:-1, :-1], out[:-1, -1], out[-1, :-1], out[-1, -1] = gpp, gpt, gpt, gtt
    return out


def quantise_joint(g: np.ndarray, n_cc: int, lam: float, level: int) -> list[Filter | None]:
    """[ALF (clip ``level``), CC, cross-chroma] filters from the joint Gram ``g`` (``quantise_parts``)."""
    return quantise_parts(g, [ALF_K, n_cc, XC_K], lam, [level, None, None])


def quantise_parts(g: np.ndarray, sizes: list[int], lam: float, clips: list) -> list[Filter | None]:
    """Filters for consecutive feature groups of ``sizes`` in the joint Gram ``g`` (``clips``: each one's
    clip index, None for none): each quantised (shift and coefficients by ``fit_filter``) given the ones
    before it as quantised and the ones after it solved again without them fixed; None for a filter that
    quantises to zero."""
    bounds = np.cumsum([0, *sizes])
    parts = [np.arange(bounds[i], bounds[i + 1]) for i in range(len(sizes))]
    done: list[tuple[np.ndarray, np.ndarray]] = []  # (indices, quantised values)
    out: list[Filter | None] = []
    for i, part in enumerate(parts):
        fixed = np.concatenate([ix for ix, _ in done]) if done else np.zeros(0, int)
        values = np.concatenate([v for _, v in done]) if done else np.zeros(0)
        rest = np.concatenate(parts[i:])
        sub = _conditional(g, rest, fixed, values)
        solved = solve(sub)[0]  # the remaining parts jointly, given the quantised ones
        later = np.arange(len(part), len(rest))
        cond = _conditional(sub, np.arange(len(part)), later, solved[later]) if len(later) else sub
        f = fit_filter(cond, lam, clips[i])
        out.append(f)
        done.append((part, np.zeros(len(part)) if f is None else f.coefs / float(1 << f.shift)))
    return out


def _sums(frames, k: int, f: Filter, bit_depth: int) -> tuple[list, int]:
    """Part ``k``'s (0 ALF, 1 CC, 2 cross-chroma) sums over ``frames`` and its bits beyond its on flag and
    CTU flags (2)."""
    if k == 0:
        return [alf_acc(c, f, bit_depth) for c, _, _, _ in frames], filter_bits(f, True)
    if k == 1:
        return [cc_acc(y, c.shape, f) for c, _, y, _ in frames], filter_bits(f, False) + (len(f.coefs) == len(CC_TAPS_BIG))
    return [xc_acc(o, f, bit_depth) for _, _, _, o in frames], filter_bits(f, False)


def chain(frames, filters: list[Filter | None], bit_depth: int, lam: float, ctu: int) -> tuple[list, float, float]:
    """[ALF, CC, cross-chroma] parts kept in turn, each where ``SSE + lam * (its bits + 2)`` falls, on the
    decoder's integer output over ``frames``; (parts, SSE, J). The rule ``fit_period`` applies as it fits."""
    maxv = (1 << bit_depth) - 1
    bases = [lifted(c) for c, _, _, _ in frames]
    cur = sum(float(ctu_sse(c, s, ctu).sum()) for c, s, _, _ in frames)
    parts: list[Part | None] = [None, None, None]
    bits = 0
    for k, f in enumerate(filters):
        if f is None:
            continue
        ds, fb = _sums(frames, k, f, bit_depth)
        on = sum(float(ctu_sse(out_of(b + d, maxv), s, ctu).sum()) for b, d, (_, s, _, _) in zip(bases, ds, frames))
        if on + lam * (2 + fb) < cur:
            parts[k], cur, bits = Part(f), on, bits + 2 + fb
            bases = [b + d for b, d in zip(bases, ds)]
    return parts, cur, cur + lam * bits


def best_subset(frames, filters: list[Filter | None], bit_depth: int, lam: float, ctu: int) -> tuple[list, float, float]:
    """As ``chain``, but the best by J of every subset of the parts, measured together: jointly fitted
    filters work as a whole (an ALF that sharpens where the CC-ALF corrects) and may each lose alone."""
    maxv = (1 << bit_depth) - 1
    have = [(k, *_sums(frames, k, f, bit_depth)) for k, f in enumerate(filters) if f is not None]
    best: tuple[list, float, float] | None = None
    for mask in range(1 << len(have)):
        chosen = [h for i, h in enumerate(have) if mask >> i & 1]
        sse = 0.0
        for i, (c, s, _, _) in enumerate(frames):
            sse += float(ctu_sse(out_of(sum((ds[i] for _, ds, _ in chosen), lifted(c)), maxv), s, ctu).sum())
        j = sse + lam * sum(2 + fb for _, _, fb in chosen)
        if best is None or j < best[2]:
            parts: list[Part | None] = [None, None, None]
            for k, _, _ in chosen:
                parts[k] = Part(filters[k])  # type: ignore[arg-type]
            best = (parts, sse, j)
    assert best is not None
    return best


def joint_chroma(frames, bit_depth: int, lam: float, ctu: int, level: int) -> tuple[list, float, float]:
    """The best by J of the jointly fitted [ALF (clip index ``level``), CC (either shape), cross-chroma]
    over ``frames`` of (chroma, source int32, luma, other chroma); (parts, SSE, J) as ``best_subset``."""
    g = joint_gram(frames, bit_depth, level, CC_TAPS_BIG)
    n = len(CC_TAPS_BIG)
    best = None
    for taps in (CC_TAPS, CC_TAPS_BIG):
        cc = [ALF_K + CC_TAPS_BIG.index(t) for t in taps]
        keep = np.r_[np.arange(ALF_K), cc, np.arange(ALF_K + n, ALF_K + n + XC_K + 1)]
        filters = quantise_joint(g[np.ix_(keep, keep)], len(taps), lam, level)
        result = best_subset(frames, filters, bit_depth, lam, ctu)
        if best is None or result[2] < best[2]:
            best = result
    assert best is not None
    return best


def improve_period(pairs, chroma: list, sums: list, bit_depth: int, lam: float, ctu: int) -> tuple[list, list]:
    """``fit_period``'s chroma parts and per-plane (SSE on, SSE off), each plane's replaced by the joint fit
    where that costs less, else by the best subset of its own parts (``ctu``: the chroma CTU size)."""
    chroma, sums = list(chroma), list(sums)
    for plane in (1, 2):
        frames = [(d.planes[plane], s.planes[plane].astype(np.int32), d.planes[0], d.planes[3 - plane]) for s, d in pairs]
        fitted = chroma[3 * plane - 3: 3 * plane]
        kept = best_subset(frames, [p.filt if p is not None else None for p in fitted], bit_depth, lam, ctu)
        level = fitted[0].filt.clip if fitted[0] is not None else 0
        parts, sse, j = min(kept, joint_chroma(frames, bit_depth, lam, ctu, level), key=lambda r: r[2])
        chroma[3 * plane - 3: 3 * plane] = parts
        sums[plane] = (sse, sums[plane][1])
    return chroma, sums


def choose_parts(c, s, sums: list, filters: list, lam: float, ctu: int, allow_flags: bool, bit_depth: int):
    """A frame's use of a set's chroma [ALF, CC, cross-chroma] (``sums``: their sums on this frame in
    2^-8 units, None where the set has no such part): the subset of parts on everywhere, or with
    ``allow_flags`` each CTU's best subset as per-part CTU flags, whichever costs less by ``SSE + lam *
    bits`` (on flags and CTU flags; the filters are the set's). Parts are judged together, as they were
    fitted. Returns ([Part | None] * 3, per-CTU SSE grid)."""
    maxv = (1 << bit_depth) - 1
    have = [k for k in range(3) if sums[k] is not None]
    tables = []
    for mask in range(1 << len(have)):
        acc = sum((sums[k] for i, k in enumerate(have) if mask >> i & 1), lifted(c))
        tables.append(ctu_sse(out_of(acc, maxv), s, ctu))
    stack = np.stack(tables)
    whole = [float(t.sum()) + lam * (len(have) + bin(mask).count("1")) for mask, t in enumerate(tables)]
    mask = int(np.argmin(whole))
    best = (whole[mask], [Part(filters[k]) if mask >> i & 1 else None for i, k in enumerate(have)], stack[mask])
    if allow_flags and len(tables[0].ravel()) > 1:
        per_ctu = stack.argmin(axis=0)
        parts, bits = [], 0
        for i, k in enumerate(have):
            flags = (per_ctu >> i & 1).astype(bool)
            on = flags.any()
            parts.append(None if not on else Part(filters[k], None if flags.all() else flags))
            bits += 1 + (flags_bits(parts[-1].flags) if on else 0)  # type: ignore[union-attr]
        grid_sse = np.take_along_axis(stack, per_ctu[None], axis=0)[0]
        if float(grid_sse.sum()) + lam * bits < best[0]:
            best = (float(grid_sse.sum()) + lam * bits, parts, grid_sse)
    out: list[Part | None] = [None, None, None]
    for k, part in zip(have, best[1]):
        out[k] = part
    return out, best[2]
