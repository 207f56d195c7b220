"""Weight-free perception metrics in numpy (HaarPSI, FSIM) and the one place eval turns 4:2:0 into RGB.

Both metrics are ports of ``piq`` 0.8 (the reference the tests compare against) so that ``genpost eval``
does not need torch. They take float RGB pictures in [0, 1], shape (H, W, 3), as piq does with
``data_range=1``; ``metric_rgb`` makes those from a genpost Frame. Each is also split into ``*_features`` of
one picture and ``*_compare`` of two, so that eval computes a source frame's half once for all its test
streams (``picture_features``/``scores`` do both metrics). docs/evaluation.md has the definitions.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from ..types import ColorInfo, Frame

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
    No rounding to 8 bits happens anywhere: a 10-bit frame keeps its precision. The array is a view of
    (3, H, W) planes, the layout the metrics read (``np.moveaxis(rgb, -1, 0)`` is contiguous).
    """
    color = color or ColorInfo()
    kr, kb = MATRIX_K.get(color.matrix, BT601_K)
    scale = float(1 << (frame.bit_depth - 8))
    cb, cr = (p.astype(np.float64) for p in (frame.u, frame.v))  # at chroma resolution: upsampled once added
    if color.range == 2:
        peak = float((1 << frame.bit_depth) - 1)
        y = frame.y.astype(np.float64) / peak
        cb, cr = ((p - (1 << (frame.bit_depth - 1))) / peak for p in (cb, cr))
    else:
        y = (frame.y.astype(np.float64) / scale - 16.0) / 219.0
        cb, cr = ((p / scale - 128.0) / 224.0 for p in (cb, cr))
    out = np.empty((3, *y.shape))
    _add_upsampled(y, 2.0 * (1.0 - kr) * cr, out[0])
    _add_upsampled(y, 2.0 * (1.0 - kb) * cb, out[2])
    tmp = kr * out[0]
    np.subtract(y, tmp, out=out[1])
    np.multiply(kb, out[2], out=tmp)
    out[1] -= tmp
    out[1] /= 1.0 - kr - kb
    np.clip(out, 0.0, 1.0, out=out)
    return np.moveaxis(out, 0, -1)


def _add_upsampled(y: np.ndarray, c: np.ndarray, out: np.ndarray) -> None:
    """out = y + c repeated 2x2 and cropped to y's size (broadcast, no full-size copy, for even sizes)."""
    h, w = y.shape
    if h % 2 or w % 2:
        np.add(y, np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:h, :w], out=out)
    else:
        np.add(y.reshape(h // 2, 2, w // 2, 2), c[:, None, :, None], out=out.reshape(h // 2, 2, w // 2, 2))


def _planes(rgb: np.ndarray) -> np.ndarray:
    """(3, H, W) view of an (H, W, 3) picture."""
    return np.moveaxis(rgb, -1, 0)


def _yiq(planes: np.ndarray) -> np.ndarray:
    """(3, H, W) YIQ of (3, H, W) RGB planes in [0, 1], scaled to [0, 255] as the metrics' authors use it."""
    return np.tensordot(YIQ * 255.0, planes, axes=1)


def _similarity(a: np.ndarray, b: np.ndarray, c: float) -> np.ndarray:
    """(2ab + c) / (a^2 + b^2 + c), with two temporaries."""
    num = a * b
    num *= 2.0
    num += c
    den = a * a
    den += b * b
    den += c
    num /= den
    return num


def _avg_pool(x: np.ndarray, k: int) -> np.ndarray:
    """k x k mean with stride k over the last two axes, dropping an incomplete last row/column (rows first:
    contiguous reads)."""
    if k == 1:
        return x
    h, w = x.shape[-2] // k * k, x.shape[-1] // k * k
    rows = x[..., 0:h:k, :w] + x[..., 1:h:k, :w]
    for i in range(2, k):
        rows += x[..., i:h:k, :w]
    cols = rows.reshape(*rows.shape[:-1], w // k, k)
    out = cols[..., 0] + cols[..., 1]
    for i in range(2, k):
        out += cols[..., i]
    out /= k * k
    return out


# ---------------------------------------------------------------- both metrics on one picture


@dataclasses.dataclass(frozen=True)
class PictureFeatures:
    """One picture's halves of HaarPSI and FSIM (``picture_features``), what eval caches per source frame."""

    haarpsi: np.ndarray
    fsim: np.ndarray

    @property
    def nbytes(self) -> int:
        return self.haarpsi.nbytes + self.fsim.nbytes


def picture_features(rgb: np.ndarray) -> PictureFeatures:
    """``haarpsi_features`` and ``fsim_features`` of one picture, its planes read once."""
    planes = _planes(rgb)
    return PictureFeatures(_haarpsi_features(planes), _fsim_features(planes))


def scores(reference: PictureFeatures, test: PictureFeatures) -> dict[str, float]:
    """{"haarpsi": ..., "fsim": ...} of two pictures' ``picture_features``."""
    return {"haarpsi": haarpsi_compare(reference.haarpsi, test.haarpsi), "fsim": fsim_compare(reference.fsim, test.fsim)}


# ---------------------------------------------------------------- HaarPSI


def haarpsi(reference: np.ndarray, test: np.ndarray, scales: int = 3, c: float = 30.0, alpha: float = 4.2) -> float:
    """Haar wavelet-based perceptual similarity (Reisenhofer et al. 2018) as piq's ``haarpsi`` computes it.

    Luma and chroma of YIQ, 2x2 mean-subsampled; horizontal and vertical Haar coefficients at 3 scales;
    local similarities of the two finest scales, weighted by the coarsest scale's magnitude, passed through
    a logistic with ``alpha``; the pooled value goes back through the logit and is squared. 1 = identical.
    Two flat pictures (all coefficients 0) give 1, where piq divides by zero.
    """
    return haarpsi_compare(haarpsi_features(reference, scales), haarpsi_features(test, scales), c, alpha)


def haarpsi_features(rgb: np.ndarray, scales: int = 3) -> np.ndarray:
    """What HaarPSI needs of one picture, (2 * scales + 2, H', W'): the magnitudes of the luma's Haar
    coefficients (per scale: horizontal-edge, vertical-edge) and of the two pooled chroma maps."""
    return _haarpsi_features(_planes(rgb), scales)


def _haarpsi_features(planes: np.ndarray, scales: int = 3) -> np.ndarray:
    pad = max(planes.shape[1] % 2, planes.shape[2] % 2)
    if pad:
        planes = np.pad(planes, ((0, 0), (0, pad), (0, pad)))
    x = _yiq(_avg_pool(planes, 2))  # pooling first: the mean commutes with the (linear) colour matrix
    out = np.empty((2 * scales + 2, *x.shape[1:]))
    _haar_magnitudes(x[0], scales, out)
    chroma = np.pad(x[1:], ((0, 0), (0, 1), (0, 1)))
    np.abs(0.25 * (chroma[:, :-1, :-1] + chroma[:, 1:, :-1] + chroma[:, :-1, 1:] + chroma[:, 1:, 1:]), out=out[-2:])
    return out


def haarpsi_compare(fx: np.ndarray, fy: np.ndarray, c: float = 30.0, alpha: float = 4.2) -> float:
    """HaarPSI from two pictures' ``haarpsi_features``."""
    coarse = fx.shape[0] - 4  # the last scale's horizontal-edge magnitudes
    w, s = np.empty((3, *fx.shape[1:])), np.empty((3, *fx.shape[1:]))
    for o in (0, 1):
        np.maximum(fx[coarse + o], fy[coarse + o], out=w[o])
        np.add(_similarity(fx[o], fy[o], c), _similarity(fx[2 + o], fy[2 + o], c), out=s[o])
    np.add(_similarity(fx[-2], fy[-2], c), _similarity(fx[-1], fy[-1], c), out=s[2])
    s /= 2
    np.add(w[0], w[1], out=w[2])
    w[2] /= 2
    if not np.any(w):  # both pictures flat (e.g. black): no structure to differ in; piq returns inf here
        return 1.0
    score = (np.sum(w / (1.0 + np.exp(-alpha * s))) + EPS) / (np.sum(w) + EPS)
    return float((math.log(score / (1.0 - score)) / alpha) ** 2)


def _haar_magnitudes(plane: np.ndarray, scales: int, out: np.ndarray) -> None:
    """|horizontal-edge| and |vertical-edge| Haar coefficients per scale into out[2 * scale + (0, 1)], same
    size as the plane, zero padded top/left by k/2 - 1 and bottom/right by k/2 for a k x k kernel (MATLAB's
    conv2 'same' with an even kernel). Box sums of 2, 4, 8 ... samples are built from each other."""
    h, w = plane.shape
    big = 2**scales // 2  # half the largest kernel
    q = np.pad(plane, ((big - 1, big), (big - 1, big)))
    for diff_axis in (0, 1):  # horizontal edges: mean across columns, top minus bottom half of the rows
        box = _along(1 - diff_axis)
        along = _along(diff_axis)
        n_box, n_diff = (w, h) if diff_axis == 0 else (h, w)
        sums = q
        for scale in range(scales):
            k = 2 ** (scale + 1)
            sums = box(sums, 0, -(k // 2)) + box(sums, k // 2, None)  # sums of k samples along the box axis
            o = big - k // 2
            part = along(box(sums, o, o + n_box), o, o + n_diff + k - 1)
            for m in (2**i for i in range(scale)):  # sums of k/2 samples along the difference axis
                part = along(part, 0, -m) + along(part, m, None)
            dst = out[2 * scale + diff_axis]
            np.subtract(along(part, 0, n_diff), along(part, k // 2, k // 2 + n_diff), out=dst)
            np.abs(dst, out=dst)
            dst *= 1.0 / k


def _along(axis: int):
    """A slicer of [start:stop] along ``axis`` of a 2-D array."""
    if axis == 0:
        return lambda a, start, stop: a[start:stop]
    return lambda a, start, stop: a[:, start:stop]


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
    return _fsim_features(_planes(rgb))


def _fsim_features(planes: np.ndarray) -> np.ndarray:
    yiq = _yiq(_avg_pool(planes, max(1, round(min(planes.shape[1:]) / 256))))
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
def _filter_bank(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The log-Gabor filters of a picture size and, per orientation, the sums the noise estimate needs:
    of the squared spatial filters, of products of neighbouring scales, and of the finest filter's squared
    frequency response (cached: same for every frame)."""
    filters = _log_gabor_filters(h, w)
    spatial = np.fft.ifft2(filters).real * math.sqrt(h * w)
    sum_an2 = (spatial**2).sum(axis=(1, 2, 3))
    pairs = sum((spatial[:, s : s + 1] * spatial[:, s + 1 :]).sum(axis=(1, 2, 3)) for s in range(filters.shape[1] - 1))
    filters = filters.astype(FSIM_DTYPE)
    return filters, sum_an2, pairs, (filters[:, 0] ** 2).sum(axis=(-2, -1))


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


def _phase_congruency(plane, filters, sum_an2, sum_ai_aj, em_n, k: float = 2.0) -> np.ndarray:
    """Kovesi's phase congruency (PC_2 with noise compensation), as in piq's ``_phase_congruency``."""
    orientations = filters.shape[0]
    eo = np.fft.ifft2(np.fft.fft2(plane.astype(FSIM_DTYPE)) * filters)  # even + i odd
    amplitude = np.abs(eo)
    sum_eo = eo.sum(axis=1, keepdims=True)
    sum_e, sum_o = sum_eo.real, sum_eo.imag
    norm = np.sqrt(sum_e**2 + sum_o**2) + EPS
    mean = np.empty_like(sum_eo)  # conj of the mean direction: eo * mean = (e me + o mo) - i (e mo - o me)
    mean.real, mean.imag = sum_e / norm, -(sum_o / norm)
    proj = np.multiply(eo, mean, out=eo)
    energy = np.abs(proj.imag)
    np.subtract(proj.real, energy, out=energy)
    energy = energy.sum(axis=1)
    e2 = (amplitude[:, 0] ** 2).reshape(orientations, -1)
    middle = (e2.shape[1] - 1) // 2  # torch.median: the lower middle value
    median = np.partition(e2, middle, axis=1)[:, middle]
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
