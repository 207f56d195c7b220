"""Objective metrics on genpost Frames at the reference's bit depth (peak = 2^bitdepth - 1), and BD-rate.

PSNR and MS-SSIM are computed here in numpy; XPSNR comes from FFmpeg's ``xpsnr`` filter (through
``media.CompareFilter``) and VMAF from the ffmpeg binary (``genpost.media.ffmpeg``). MS-SSIM is also split into
``ms_ssim_features`` of one plane and ``ms_ssim_compare`` of two, so that eval computes a source frame's half
once for all its test streams. The definitions, sequence pooling and rounding are written down in
docs/evaluation.md; change them there too.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np

from ..types import Frame, to_bit_depth

PSNR_CAP = 100.0  # dB reported for a lossless plane (MSE 0), as HM/VTM do


def sse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.int64) - b.astype(np.int64)
    return float(np.einsum("ij,ij->", d, d))


def psnr(mse: float, bit_depth: int) -> float:
    peak = float((1 << bit_depth) - 1)
    return PSNR_CAP if mse <= 0 else min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


def frame_mse(reference: Frame, test: Frame) -> tuple[float, float, float]:
    """Per-plane MSE after bringing ``test`` to the reference's bit depth (``types.to_bit_depth`` rounding)."""
    test = to_bit_depth(test, reference.bit_depth)
    y, u, v = (sse(r, t) / r.size for r, t in zip(reference.planes, test.planes))
    return y, u, v


def sequence_psnr(references: Iterable[Frame], tests: Iterable[Frame]) -> dict[str, float]:
    """Mean of per-frame PSNR per plane (the VTM/HM log convention), plus the frame count."""
    sums = [0.0, 0.0, 0.0]
    n = 0
    depth = 8
    for ref, test in zip(references, tests, strict=True):
        depth = ref.bit_depth
        for i, m in enumerate(frame_mse(ref, test)):
            sums[i] += psnr(m, depth)
        n += 1
    if n == 0:
        raise ValueError("no frames to compare")
    return {"psnr_y": sums[0] / n, "psnr_u": sums[1] / n, "psnr_v": sums[2] / n, "frames": n}


# ---------------------------------------------------------------- MS-SSIM

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang, Simoncelli, Bovik 2003
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The normalised 1-D Gaussian whose outer product is MATLAB's fspecial('gaussian', 11, 1.5)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


FILTER_STRIPE = 32  # rows per pass of _filter_valid: its temporaries stay in the CPU cache


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation with the symmetric 1-D window ``g`` along both axes.

    Taps k and n-1-k are added before their one multiply, in stripes of FILTER_STRIPE output rows whose
    temporaries stay in cache: 3x the speed of whole-plane shifted sums, the same sums to ~1e-16.
    """
    n = len(g)
    h, w = x.shape[0] - n + 1, x.shape[1] - n + 1
    out = np.empty((h, w))
    rows = np.empty((min(FILTER_STRIPE, h), x.shape[1]))
    tmp, tmp_out = np.empty_like(rows), np.empty((rows.shape[0], w))
    for top in range(0, h, FILTER_STRIPE):
        m = min(FILTER_STRIPE, h - top)
        _taps(lambda k: x[top + k : top + k + m], g, rows[:m], tmp[:m])
        _taps(lambda k: rows[:m, k : k + w], g, out[top : top + m], tmp_out[:m])
    return out


def _taps(shifted, g: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> None:
    """out = sum_k g[k] * shifted(k) for a symmetric ``g``, the mirrored taps paired."""
    n = len(g)
    half = n // 2
    if n % 2:
        np.multiply(shifted(half), g[half], out=out)
    else:
        out.fill(0.0)
    for k in range(half):
        np.add(shifted(k), shifted(n - 1 - k), out=tmp)
        tmp *= g[k]
        out += tmp


def _pad_to_window(x: np.ndarray, n: int) -> np.ndarray:
    """Mirror-extend a plane smaller than the window (coarse scales of small clips) to the window size."""
    ph, pw = max(0, n - x.shape[0]), max(0, n - x.shape[1])
    if not (ph or pw):
        return x
    return np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)), mode="symmetric")


@dataclasses.dataclass(frozen=True)
class SsimScale:
    """One picture at one MS-SSIM scale: the plane (padded to the window; the input's integers at scale 1),
    its Gaussian mean and variance over the 'valid' windows."""

    plane: np.ndarray
    mean: np.ndarray
    var: np.ndarray


@dataclasses.dataclass(frozen=True)
class MsSsimFeatures:
    """What MS-SSIM needs of one picture (``ms_ssim_features``): all but the cross term, per scale."""

    peak: float
    scales: tuple[SsimScale, ...]

    @property
    def nbytes(self) -> int:
        return sum(s.plane.nbytes + s.mean.nbytes + s.var.nbytes for s in self.scales)


def _scale(plane: np.ndarray, g: np.ndarray) -> tuple[SsimScale, np.ndarray]:
    """The scale's statistics and the float64 plane (unpadded) the next scale is downsampled from."""
    x = plane.astype(np.float64, copy=False)
    padded = _pad_to_window(plane, len(g))
    xp = x if padded is plane else padded.astype(np.float64, copy=False)
    mean = _filter_valid(xp, g)
    var = _filter_valid(xp * xp, g)
    var -= mean * mean
    return SsimScale(padded, mean, var), x


def ms_ssim_features(plane: np.ndarray, bit_depth: int, scales: int = len(MS_SSIM_WEIGHTS)) -> MsSsimFeatures:
    """One picture's half of MS-SSIM: its pyramid and per-scale means and variances. Half of ``ms_ssim``'s
    work; eval computes it once per source frame and compares it with every test picture."""
    g = gaussian_window()
    out = []
    x = np.array(plane)  # kept (scale 1 holds the input's samples): a copy the caller cannot change
    for level in range(scales):
        scale, xf = _scale(x, g)
        out.append(scale)
        if level < scales - 1:
            x = _downsample(xf)
    return MsSsimFeatures(float((1 << bit_depth) - 1), tuple(out))


def _cross(sx: SsimScale, sy: SsimScale, peak: float, g: np.ndarray, with_ssim: bool) -> tuple[float, float]:
    """Mean SSIM (NaN unless ``with_ssim``) and mean contrast-structure term of two pictures at one scale."""
    c1, c2 = (SSIM_K[0] * peak) ** 2, (SSIM_K[1] * peak) ** 2
    mx, my = sx.mean, sy.mean
    sxy = _filter_valid(np.multiply(sx.plane, sy.plane, dtype=np.float64), g)
    sxy -= mx * my
    cs = 2 * sxy
    cs += c2
    den = sx.var + sy.var
    den += c2
    cs /= den
    if not with_ssim:
        return math.nan, float(cs.mean())
    ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return float(ssim.mean()), float(cs.mean())


def _ssim_cs(x: np.ndarray, y: np.ndarray, peak: float, g: np.ndarray) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term over all 'valid' windows (Wang's ssim_index)."""
    return _cross(_scale(x, g)[0], _scale(y, g)[0], peak, g, True)


def _downsample(x: np.ndarray) -> np.ndarray:
    """2x2 mean then keep every other sample; an odd last row/column is averaged with itself
    (MATLAB's imfilter(ones(2)/4, 'symmetric') followed by (1:2:end, 1:2:end))."""
    if x.shape[0] % 2:
        x = np.concatenate([x, x[-1:]], axis=0)
    if x.shape[1] % 2:
        x = np.concatenate([x, x[:, -1:]], axis=1)
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(
    reference: np.ndarray, test: np.ndarray, bit_depth: int, weights: Sequence[float] = MS_SSIM_WEIGHTS
) -> float:
    """Multi-scale SSIM of one plane (Wang, Simoncelli, Bovik 2003; their msssim.m).

    Five scales, 11x11 Gaussian window (sigma 1.5), K = (0.01, 0.03), L = 2^bit_depth - 1, 'valid'
    windows, 2x2 mean downsampling, result = prod_{s<5} cs_s^w_s * ssim_5^w_5. Negative cs/ssim terms
    (anti-correlated content) are clamped to 0 so the fractional powers stay real. Planes smaller than
    the window at a coarse scale are mirror-extended to the window size (only clips under 176x176).
    """
    if reference.shape != test.shape:
        raise ValueError(f"plane shapes differ: {reference.shape} vs {test.shape}")
    n = len(weights)
    return ms_ssim_compare(ms_ssim_features(reference, bit_depth, n), ms_ssim_features(test, bit_depth, n), weights)


def ms_ssim_compare(reference: MsSsimFeatures, test: MsSsimFeatures, weights: Sequence[float] = MS_SSIM_WEIGHTS) -> float:
    """MS-SSIM from two pictures' ``ms_ssim_features`` (the same numbers as ``ms_ssim`` on the planes)."""
    if reference.scales[0].plane.shape != test.scales[0].plane.shape:
        raise ValueError(f"plane shapes differ: {reference.scales[0].plane.shape} vs {test.scales[0].plane.shape}")
    if not (len(reference.scales) == len(test.scales) == len(weights)) or reference.peak != test.peak:
        raise ValueError("features of different depths or scale counts")
    g = gaussian_window()
    out = 1.0
    for level, weight in enumerate(weights):
        last = level == len(weights) - 1
        ssim, cs = _cross(reference.scales[level], test.scales[level], reference.peak, g, last)
        out *= max(ssim if last else cs, 0.0) ** weight
    return float(out)


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), capped like PSNR (used for its BD-rate)."""
    return PSNR_CAP if value >= 1.0 else min(PSNR_CAP, -10.0 * math.log10(1.0 - value))


# ---------------------------------------------------------------- XPSNR pooling


def xpsnr_weighted(width: int, height: int) -> bool:
    """Whether FFmpeg's xpsnr weights this picture size: its block size 4*round(32*sqrt(WH/3840/2160))
    is 0 below 2025 luma samples, where XPSNR is defined as plain PSNR (and the filter itself would
    divide by zero), so genpost reports PSNR there."""
    return 4 * int(32.0 * math.sqrt(width * height / (3840.0 * 2160.0)) + 0.5) >= 4


def sequence_xpsnr(frame_db: Sequence[float], width: int, height: int, bit_depth: int) -> float:
    """Pool per-frame XPSNR (dB) of one plane as FFmpeg's xpsnr filter does for its summary line.

    The square root of each frame's weighted SSE is averaged ("square-mean-root") and turned back into
    dB; when that mean is below 1 (near-lossless), the plain mean of the frame values is used instead.
    """
    if not frame_db:
        raise ValueError("no frames to pool")
    num = float(width * height) * float((1 << bit_depth) - 1) ** 2
    roots = [0.0 if math.isinf(v) else math.sqrt(num / 10 ** (v / 10)) for v in frame_db]
    total = sum(roots)
    if total >= len(roots):
        avg = total / len(roots)
        return min(PSNR_CAP, 10.0 * math.log10(num / (avg * avg)))
    return min(PSNR_CAP, sum(min(PSNR_CAP, v) for v in frame_db) / len(frame_db))


# ---------------------------------------------------------------- BD-rate


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson monotone slopes (the piecewise cubic Hermite used by JVET's BD-rate sheets)."""
    h = np.diff(x)
    delta = np.diff(y) / h
    m = np.zeros_like(y)
    for k in range(1, len(x) - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    m[0] = _end_slope(h[0], h[1] if len(h) > 1 else h[0], delta[0], delta[1] if len(delta) > 1 else delta[0])
    m[-1] = _end_slope(h[-1], h[-2] if len(h) > 1 else h[-1], delta[-1], delta[-2] if len(delta) > 1 else delta[-1])
    return m


def _end_slope(h0, h1, d0, d1) -> float:
    m = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(m) != np.sign(d0):
        return 0.0
    if np.sign(d0) != np.sign(d1) and abs(m) > abs(3 * d0):
        return 3 * d0
    return m


def _hermite_area(t: float, h: float, y0: float, y1: float, m0: float, m1: float) -> float:
    """Integral from 0 to t (in units of the interval, t in [0, 1]) of a cubic Hermite segment of width h."""
    return h * (
        y0 * (t**4 / 2 - t**3 + t)
        + h * m0 * (t**4 / 4 - 2 * t**3 / 3 + t**2 / 2)
        + y1 * (-(t**4) / 2 + t**3)
        + h * m1 * (t**4 / 4 - t**3 / 3)
    )


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] (inside the knots) of the PCHIP through (x, y), x increasing."""
    m = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if b <= a:
            continue
        h = x[k + 1] - x[k]
        seg = (h, y[k], y[k + 1], m[k], m[k + 1])
        total += _hermite_area((b - x[k]) / h, *seg) - _hermite_area((a - x[k]) / h, *seg)
    return float(total)


def bd_rate(anchor_kbps, anchor_quality, test_kbps, test_quality) -> float:
    """Bjontegaard delta rate in percent (negative = fewer bits for the same quality); NaN if undefined.

    log10(rate) is interpolated as a function of quality with piecewise cubic Hermite (PCHIP,
    Fritsch-Carlson) curves, integrated exactly over the overlapping quality interval, and the mean
    difference is turned back into a rate ratio. Each curve needs at least 2 points whose quality
    strictly increases with rate; otherwise (or with no overlap) the result is NaN.
    """
    curves = []
    for rate, quality in ((anchor_kbps, anchor_quality), (test_kbps, test_quality)):
        q, r = np.asarray(quality, float), np.asarray(rate, float)
        if len(q) < 2 or len(q) != len(r) or not (np.all(np.isfinite(q)) and np.all(r > 0)):
            return float("nan")
        order = np.argsort(r)
        q, r = q[order], np.log10(r[order])
        if np.any(np.diff(q) <= 0):
            return float("nan")
        curves.append((q, r))
    (qa, ra), (qt, rt) = curves
    lo, hi = max(qa[0], qt[0]), min(qa[-1], qt[-1])
    if hi <= lo:
        return float("nan")
    diff = (_pchip_integral(qt, rt, lo, hi) - _pchip_integral(qa, ra, lo, hi)) / (hi - lo)
    return float((10**diff - 1) * 100)
