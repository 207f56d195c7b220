"""Weight-free perception metrics in numpy (HaarPSI, FSIM) and the one place eval turns 4:2:0 into RGB.

Both metrics are ports of ``piq`` 0.8 (the reference the tests compare against) so that ``genpost eval``
does not need torch. They take float RGB pictures in [0, 1], shape (H, W, 3), as piq does with
``data_range=1``; ``metric_rgb`` makes those from a genpost Frame. docs/evaluation.md has the definitions.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .types import ColorInfo, Frame

EPS = float(np.finfo(np.float64).eps)
# RGB -> YIQ (NTSC), the matrix piq uses for both metrics
YIQ = np.array([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]])
# (Kr, Kb) of the Y'CbCr matrices by FFmpeg's colour-matrix enum; anything else is BT.601 as FFmpeg assumes
MATRIX_K = {1: (0.2126, 0.0722), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593)}
BT601_K = (0.299, 0.114)


# ---------------------------------------------------------------- colour handling (the only place)


def metric_rgb(frame: Frame, color: ColorInfo | None = None) -> np.ndarray:
    """Float64 RGB in [0, 1], shape (H, W, 3), from a 4:2:0 frame at its native bit depth.

    Chroma is upsampled by sample repetition (2x2, the 4:2:0 grid's nearest neighbour); the matrix is
    the stream's (BT.709, BT.2020) or BT.601 when unspecified; limited range unless the stream says full.
    No rounding to 8 bits happens anywhere: a 10-bit frame keeps its precision.
    """
    color = color or ColorInfo()
    kr, kb = MATRIX_K.get(color.matrix, BT601_K)
    scale = float(1 << (frame.bit_depth - 8))
    h, w = frame.y.shape
    up = [np.repeat(np.repeat(p, 2, axis=0), 2, axis=1)[:h, :w].astype(np.float64) for p in (frame.u, frame.v)]
    if color.range == 2:
        peak = float((1 << frame.bit_depth) - 1)
        y = frame.y.astype(np.float64) / peak
        cb, cr = ((p - (1 << (frame.bit_depth - 1))) / peak for p in up)
    else:
        y = (frame.y.astype(np.float64) / scale - 16.0) / 219.0
        cb, cr = ((p / scale - 128.0) / 224.0 for p in up)
    r = y + 2.0 * (1.0 - kr) * cr
    b = y + 2.0 * (1.0 - kb) * cb
    g = (y - kr * r - kb * b) / (1.0 - kr - kb)
    return np.clip(np.stack([r, g, b], axis=-1), 0.0, 1.0)


def _yiq(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) YIQ of an (H, W, 3) RGB picture in [0, 255]."""
    return np.einsum("ij,hwj->ihw", YIQ, rgb)


def _similarity(a: np.ndarray, b: np.ndarray, c: float) -> np.ndarray:
    return (2.0 * a * b + c) / (a * a + b * b + c)


def _avg_pool(x: np.ndarray, k: int) -> np.ndarray:
    """k x k mean with stride k over the last two axes, dropping an incomplete last row/column."""
    if k == 1:
        return x
    h, w = x.shape[-2] // k * k, x.shape[-1] // k * k
    x = x[..., :h, :w]
    return x.reshape(*x.shape[:-2], h // k, k, w // k, k).mean(axis=(-3, -1))


def _box_rows(x: np.ndarray, n: int) -> np.ndarray:
    """Sums of n consecutive rows ('valid')."""
    c = np.cumsum(np.concatenate([np.zeros((1, x.shape[1])), x]), axis=0)
    return c[n:] - c[:-n]


# ---------------------------------------------------------------- HaarPSI


def haarpsi(reference: np.ndarray, test: np.ndarray, scales: int = 3, c: float = 30.0, alpha: float = 4.2) -> float:
    """Haar wavelet-based perceptual similarity (Reisenhofer et al. 2018) as piq's ``haarpsi`` computes it.

    Luma and chroma of YIQ, 2x2 mean-subsampled; horizontal and vertical Haar coefficients at 3 scales;
    local similarities of the two finest scales, weighted by the coarsest scale's magnitude, passed through
    a logistic with ``alpha``; the pooled value goes back through the logit and is squared. 1 = identical.
    Two flat pictures (all coefficients 0) give 1, where piq divides by zero.
    """
    x, y = _yiq(reference * 255.0), _yiq(test * 255.0)
    pad = max(x.shape[1] % 2, x.shape[2] % 2)
    x, y = (_avg_pool(np.pad(p, ((0, 0), (0, pad), (0, pad))), 2) for p in (x, y))
    coeff_x, coeff_y = _haar(x[0], scales), _haar(y[0], scales)
    weights = [np.maximum(np.abs(coeff_x[2 * (scales - 1) + o]), np.abs(coeff_y[2 * (scales - 1) + o])) for o in (0, 1)]
    sims = []
    for o in (0, 1):
        s = sum(_similarity(np.abs(coeff_x[2 * k + o]), np.abs(coeff_y[2 * k + o]), c) for k in (0, 1))
        sims.append(s / 2)
    chroma = [np.abs(_avg_pool2_stride1(np.pad(p[1:], ((0, 0), (0, 1), (0, 1))))) for p in (x, y)]
    sims.append(sum(_similarity(chroma[0][i], chroma[1][i], c) for i in (0, 1)) / 2)
    weights.append((weights[0] + weights[1]) / 2)
    w, s = np.stack(weights), np.stack(sims)
    if not np.any(w):  # both pictures flat (e.g. black): no structure to differ in; piq returns inf here
        return 1.0
    score = (np.sum(w / (1.0 + np.exp(-alpha * s))) + EPS) / (np.sum(w) + EPS)
    return float((math.log(score / (1.0 - score)) / alpha) ** 2)


def _haar(plane: np.ndarray, scales: int) -> list[np.ndarray]:
    """[horizontal-edge, vertical-edge] coefficients per scale, same size as the plane, zero padded
    top/left by k/2 - 1 and bottom/right by k/2 (MATLAB's conv2 'same' with an even kernel)."""
    out = []
    for scale in range(scales):
        k = 2 ** (scale + 1)
        p = np.pad(plane, ((k // 2 - 1, k // 2), (k // 2 - 1, k // 2)))
        for q in (p, p.T):  # the kernel and its transpose
            cols = _box_rows(q.T, k).T / k  # mean over k columns
            half = _box_rows(cols, k // 2)
            coeff = half[: -k // 2] - half[k // 2 :]  # top half minus bottom half of each k x k window
            out.append(coeff if q is p else coeff.T)
    return out


def _avg_pool2_stride1(x: np.ndarray) -> np.ndarray:
    return 0.25 * (x[..., :-1, :-1] + x[..., 1:, :-1] + x[..., :-1, 1:] + x[..., 1:, 1:])


# ---------------------------------------------------------------- FSIM

FSIM_T = (0.85, 160.0, 200.0, 200.0)  # T1 (phase congruency), T2 (gradient), T3/T4 (I/Q chroma)
FSIM_LAMBDA = 0.03
# the filter responses (16 complex FFTs per picture, most of FSIM's time) in single precision: half the
# time of float64, within 1e-5 of piq's float64 result
FSIM_DTYPE = np.float32


def fsim(reference: np.ndarray, test: np.ndarray) -> float:
    """FSIMc (Zhang et al. 2011) as piq's ``fsim`` computes it: phase congruency (log-Gabor, 4 scales x
    4 orientations) and Scharr gradient similarity of YIQ luma, times the I/Q chroma similarity to 0.03,
    pooled with the larger phase congruency as weight. 1 = identical."""
    return fsim_compare(fsim_features(reference), fsim_features(test))


def fsim_features(rgb: np.ndarray) -> np.ndarray:
    """What FSIM needs of one picture, (4, H', W'): phase congruency, gradient magnitude, I, Q. Half of
    ``fsim``'s work; eval computes it once per source frame and compares it with every test picture."""
    x = rgb * 255.0
    yiq = _avg_pool(_yiq(x), max(1, round(min(x.shape[:2]) / 256)))
    return np.stack([_phase_congruency(yiq[0], *_filter_bank(*yiq.shape[1:])), _gradient(yiq[0]), yiq[1], yiq[2]])


def fsim_compare(fx: np.ndarray, fy: np.ndarray) -> float:
    """FSIM from two pictures' ``fsim_features``."""
    t1, t2, t3, t4 = FSIM_T
    pc_max = np.maximum(fx[0], fy[0])
    score = _similarity(fx[0], fy[0], t1) * _similarity(fx[1], fy[1], t2) * pc_max
    score = score * np.abs(_similarity(fx[2], fy[2], t3) * _similarity(fx[3], fy[3], t4)) ** FSIM_LAMBDA
    return float(score.sum() / pc_max.sum())


def _grid(n: int) -> np.ndarray:
    return (np.arange(n) - (n - 1) / 2) / (n - 1) if n % 2 else (np.arange(n) - n / 2) / n


@functools.lru_cache(maxsize=4)
def _filter_bank(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The log-Gabor filters of a picture size and, per orientation, the sums the noise estimate needs:
    of the squared spatial filters, and of products of neighbouring scales (cached: same for every frame)."""
    filters = _log_gabor_filters(h, w)
    spatial = np.fft.ifft2(filters).real * math.sqrt(h * w)
    sum_an2 = (spatial**2).sum(axis=(1, 2, 3))
    pairs = sum((spatial[:, s : s + 1] * spatial[:, s + 1 :]).sum(axis=(1, 2, 3)) for s in range(filters.shape[1] - 1))
    return filters.astype(FSIM_DTYPE), sum_an2, pairs


def _log_gabor_filters(h: int, w: int, scales=4, orientations=4, min_length=6, mult=2, sigma_f=0.55, delta_theta=1.2):
    """(orientations, scales, H, W) frequency-domain log-Gabor filters, zero frequency at [0, 0]."""
    gx, gy = np.meshgrid(_grid(h), _grid(w), indexing="ij")
    radius = np.sqrt(gx**2 + gy**2)
    theta = np.fft.ifftshift(np.arctan2(-gy, gx))
    lowpass = np.fft.ifftshift(1.0 / (1.0 + (radius / 0.45) ** 30))
    radius = np.fft.ifftshift(radius)
    radius[0, 0] = 1.0
    radial = []
    for s in range(scales):
        g = np.exp(-(np.log(radius * (min_length * mult**s)) ** 2) / (2 * math.log(sigma_f) ** 2)) * lowpass
        g[0, 0] = 0.0
        radial.append(g)
    theta_sigma = math.pi / (orientations * delta_theta)
    out = np.empty((orientations, scales, h, w))
    sin, cos = np.sin(theta), np.cos(theta)
    for o in range(orientations):
        angle = o * math.pi / orientations
        d = np.abs(np.arctan2(sin * math.cos(angle) - cos * math.sin(angle), cos * math.cos(angle) + sin * math.sin(angle)))
        spread = np.exp(-(d**2) / (2 * theta_sigma**2))
        for s in range(scales):
            out[o, s] = spread * radial[s]
    return out


def _phase_congruency(plane, filters, sum_an2, sum_ai_aj, k: float = 2.0) -> np.ndarray:
    """Kovesi's phase congruency (PC_2 with noise compensation), as in piq's ``_phase_congruency``."""
    orientations, scales, h, w = filters.shape
    eo = np.fft.ifft2(np.fft.fft2(plane.astype(FSIM_DTYPE)) * filters)
    even, odd = eo.real, eo.imag
    amplitude = np.abs(eo)
    sum_e, sum_o = even.sum(axis=1, keepdims=True), odd.sum(axis=1, keepdims=True)
    norm = np.sqrt(sum_e**2 + sum_o**2) + EPS
    mean_e, mean_o = sum_e / norm, sum_o / norm
    energy = (even * mean_e + odd * mean_o - np.abs(even * mean_o - odd * mean_e)).sum(axis=1)
    em_n = (filters[:, 0] ** 2).sum(axis=(-2, -1))
    e2 = np.sort((amplitude[:, 0] ** 2).reshape(orientations, -1), axis=1)
    median = e2[:, (e2.shape[1] - 1) // 2]  # torch.median: the lower middle value
    noise_power = -median / math.log(0.5) / em_n
    tau = np.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_ai_aj) / 2)
    threshold = (tau * math.sqrt(math.pi / 2) + k * np.sqrt((2 - math.pi / 2) * tau**2)) / 1.7
    energy = np.maximum(energy - threshold[:, None, None], 0.0)
    return (energy.sum(axis=0) + EPS) / (amplitude.sum(axis=(0, 1)) + EPS)


def _gradient(plane: np.ndarray) -> np.ndarray:
    """Scharr gradient magnitude with zero padding (piq's ``gradient_map``)."""
    p = np.pad(plane, 1)
    kern = np.array([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 16
    h, w = plane.shape
    gx = sum(kern[i, j] * p[i : i + h, j : j + w] for i in range(3) for j in range(3) if kern[i, j])
    gy = sum(kern[j, i] * p[i : i + h, j : j + w] for i in range(3) for j in range(3) if kern[j, i])
    return np.sqrt(gx**2 + gy**2)
