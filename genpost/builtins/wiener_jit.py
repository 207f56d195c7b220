"""Optional compiled kernels for wiener's decoder (numba), bit-exact with the numpy code.

``wiener_alf`` stays the normative, always-available implementation; when numba is installed
(``pip install "genpost[fast]"``) and ``GENPOST_WIENER_JIT`` is not ``0``, the same integer
arithmetic runs as compiled loops on one core. ``tests/test_wiener_alf.py`` compares both on random
input. numba is imported on first use, never at genpost's import.
"""

from __future__ import annotations

import os

import numpy as np

_KERNELS: dict | None = None


def kernels() -> dict | None:
    """The compiled kernels, or None when numba is absent or disabled."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = {}
        if os.environ.get("GENPOST_WIENER_JIT", "1") != "0":
            try:
                _KERNELS = _compile()
            except ImportError:
                pass
    return _KERNELS or None


def _compile() -> dict:
    import numba

    @numba.njit(cache=True, nogil=True)
    def pair_filter(p, r, offs, coefs, clips, block_log2, shift, h, w):
        """sum_k coefs[block, k] * (clip(p[+o_k] - x) + clip(p[-o_k] - x)), rounded >> shift (0: unrounded).

        Row by row, tap by tap, so the inner loop runs over contiguous samples."""
        out = np.empty((h, w), np.int32)
        n = offs.shape[0]
        acc = np.empty(w, np.int32)
        crow = np.empty((n, w), np.int32)
        lo = np.empty(w, np.int32)
        hi = np.empty(w, np.int32)
        rnd = np.int32((1 << shift) >> 1)  # shift 0: the raw sum
        last = -1
        for i in range(h):
            bi = i >> block_log2
            if bi != last:  # the coefficients and bounds of this row of blocks, per sample
                last = bi
                for j in range(w):
                    bj = j >> block_log2
                    hi[j] = clips[bi, bj]
                    lo[j] = -clips[bi, bj]
                    for k in range(n):
                        crow[k, j] = coefs[bi, bj, k]
            acc[:] = 0
            xr = p[i + r, r:r + w]
            for k in range(n):
                dy = offs[k, 0]
                dx = offs[k, 1]
                ra = p[i + r + dy, r + dx:r + dx + w]  # views, so the inner loop indexes from 0 and vectorises
                rb = p[i + r - dy, r - dx:r - dx + w]
                ck = crow[k]
                for j in range(w):
                    x = np.int32(xr[j])
                    a = np.int32(ra[j]) - x
                    b = np.int32(rb[j]) - x
                    a = min(max(a, lo[j]), hi[j])
                    b = min(max(b, lo[j]), hi[j])
                    acc[j] += ck[j] * (a + b)
            for j in range(w):
                out[i, j] = (acc[j] + rnd) >> shift
        return out

    @numba.njit(cache=True, nogil=True)
    def laplacian_sums(p, h4, w4):
        """g_v, g_h, g_d0, g_d1 per 4x4 block from a plane padded by 3 (see ``wiener_alf``): 4x4 cells
        of |2x - a - b| starting at row/column -2, each window the sum of 2x2 cells."""
        cells = np.zeros((4, h4 + 1, w4 + 1), np.int64)
        wn = 4 * w4 + 4
        lap = np.empty((4, wn), np.int32)
        for i in range(1, 4 * h4 + 5):
            ci = (i - 1) >> 2
            c, up, dn = p[i, 1:wn + 1], p[i - 1, 1:wn + 1], p[i + 1, 1:wn + 1]  # row views: a vector loop
            le, ri = p[i, 0:wn], p[i, 2:wn + 2]
            ul, ur, dl, dr = p[i - 1, 0:wn], p[i - 1, 2:wn + 2], p[i + 1, 0:wn], p[i + 1, 2:wn + 2]
            for j in range(wn):
                c2 = 2 * np.int32(c[j])
                lap[0, j] = abs(c2 - np.int32(up[j]) - np.int32(dn[j]))
                lap[1, j] = abs(c2 - np.int32(le[j]) - np.int32(ri[j]))
                lap[2, j] = abs(c2 - np.int32(ul[j]) - np.int32(dr[j]))
                lap[3, j] = abs(c2 - np.int32(ur[j]) - np.int32(dl[j]))
            for g in range(4):
                for cj in range(w4 + 1):
                    cells[g, ci, cj] += lap[g, 4 * cj] + lap[g, 4 * cj + 1] + lap[g, 4 * cj + 2] + lap[g, 4 * cj + 3]
        return cells[:, :-1, :-1] + cells[:, 1:, :-1] + cells[:, :-1, 1:] + cells[:, 1:, 1:]

    @numba.njit(cache=True, nogil=True)
    def cc_filter(ev, od, taps, coefs, shift, hc, wc):
        """sum_k coefs[k] * (Y[2i+dy, 2j+dx] - Y[2i, 2j]) >> shift over the luma padded by 2 (top, left),
        given as its even (``ev``) and odd (``od``) columns.

        Computed as ``sum_k c_k Y_k - (sum_k c_k) Y_0`` (the same integers) so the inner loops run over
        contiguous samples."""
        out = np.empty((hc, wc), np.int32)
        acc = np.empty(wc, np.int32)
        rnd = np.int32((1 << shift) >> 1)  # shift 0: the raw sum
        csum = np.int32(0)
        for k in range(taps.shape[0]):
            csum += coefs[k]
        for i in range(hc):
            centre = ev[2 * i + 2, 1:1 + wc]
            for j in range(wc):
                acc[j] = -csum * np.int32(centre[j])
            for k in range(taps.shape[0]):
                dy = taps[k, 0]
                dx = taps[k, 1]
                c = coefs[k]
                if dx & 1:  # column 2j + 2 + dx is odd: od[j + (1 + dx) / 2]
                    o = (1 + dx) >> 1
                    src = od[2 * i + 2 + dy, o:o + wc]
                else:
                    o = 1 + (dx >> 1)
                    src = ev[2 * i + 2 + dy, o:o + wc]
                for j in range(wc):
                    acc[j] += c * np.int32(src[j])
            for j in range(wc):
                out[i, j] = (acc[j] + rnd) >> shift
        return out

    @numba.njit(cache=True, nogil=True)
    def combine(x, d1, f1, l1, d2, f2, l2, max_value):
        """clip(x + d1 where its CTU flag f1 is on + d2 where f2 is on, 0, max_value) in x's dtype."""
        h, w = x.shape
        out = np.empty_like(x)
        for i in range(h):
            for j in range(w):
                v = np.int32(x[i, j])
                if f1[i >> l1, j >> l1]:
                    v += d1[i, j]
                if f2[i >> l2, j >> l2]:
                    v += d2[i, j]
                out[i, j] = min(max(v, 0), max_value)
        return out

    @numba.njit(cache=True, nogil=True)
    def classes(g, act_shift, table):
        """Class 5 D + A and transform per block from the Laplacian sums (``wiener_alf.classify``)."""
        _, h4, w4 = g.shape
        cls = np.empty((h4, w4), np.int64)
        tr = np.empty((h4, w4), np.int64)
        for i in range(h4):
            for j in range(w4):
                gv, gh, d0, d1 = g[0, i, j], g[1, i, j], g[2, i, j], g[3, i, j]
                hv_max, hv_min = max(gv, gh), min(gv, gh)
                d_max, d_min = max(d0, d1), min(d0, d1)
                direction = 0  # no direction unless a ratio exceeds 2; else the larger ratio's, 9/2 strong
                if hv_max > 2 * hv_min or d_max > 2 * d_min:
                    hv = hv_max * d_min > d_max * hv_min
                    big, small = (hv_max, hv_min) if hv else (d_max, d_min)
                    direction = (1 if hv else 3) + (1 if 2 * big > 9 * small else 0)
                cls[i, j] = 5 * direction + table[min((gv + gh) >> act_shift, 15)]
                tr[i, j] = (1 if gv > gh else 0) + (2 if d0 > d1 else 0)
        return cls, tr

    return {"classes": classes, "combine": combine, "pair_filter": pair_filter, "laplacian_sums": laplacian_sums, "cc_filter": cc_filter}
