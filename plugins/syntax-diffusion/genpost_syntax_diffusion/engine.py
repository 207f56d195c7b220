"""The two networks as ``genpost.learned.modeling.Network``s (onnxruntime by default, or torch; overlapping tiles;
weights only through ``genpost.learned.weights``), the few-step sampler and the low-frequency consistency step."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from genpost.learned.modeling import Network, NetworkSpec

from .codec import ZMAX, K

WHO = "syntax-diffusion"
DENOISER = ("syntax_denoiser_v1.onnx", "syntax_denoiser_v1.safetensors")
EXTRACTOR = ("syntax_extractor_v1.onnx", "syntax_extractor_v1.safetensors")
HALO = 8  # > the denoiser's receptive radius (7 convs of 3x3 at chroma resolution): tiles join exactly
EXTRACTOR_HALO = 4  # > its radius of 2
TILE = 256  # chroma samples (512 luma)

# ``denoiser(owner, backend, device)``: ``net(inputs (15 + K, h, w)) -> source estimate (6, h, w)``
denoiser = NetworkSpec(WHO, DENOISER, f"{__package__}.model:Denoiser", 6, HALO, TILE)
# ``extractor(owner, backend, device)``: ``net(source 6 + decoded 6 + QP plane) -> (K, h, w)`` features; the
# vector is their frame mean
extractor = NetworkSpec(WHO, EXTRACTOR, f"{__package__}.model:SyntaxExtractor", K, EXTRACTOR_HALO, TILE)
pick, make_denoiser = denoiser.pick, denoiser.make_module


def syntax_vector(net: Network, source: np.ndarray, decoded: np.ndarray) -> tuple[int, ...]:
    """The quantised syntax vector of a frame: round(ZMAX * tanh(mean / ZMAX)), once per frame."""
    m = net(np.concatenate([source, decoded])).astype(np.float64).mean((1, 2))
    return tuple(int(v) for v in np.clip(np.rint(ZMAX * np.tanh(m / ZMAX)), -ZMAX, ZMAX))


def sample(net: Network, decoded: np.ndarray, z: tuple[int, ...] | None, steps: int) -> np.ndarray:
    """Deterministic few-step sampler from the packed (7, h, w) decode + QP plane: x_0 = decoded, then
    x <- x + (x1_hat(x, t) - x) / (steps - k) at t = k / steps (1 step: x = x1_hat). ``z`` None = the
    default mode (zero vector, present flag 0)."""
    h, w = decoded.shape[1:]
    cond = np.zeros((K + 2, 1, 1), np.float32)  # t, z (K), present
    if z is not None:
        cond[1 : K + 1, 0, 0] = np.asarray(z, np.float32) / ZMAX
        cond[K + 1] = 1.0
    x = decoded[:6].copy()
    for k in range(steps):
        cond[0] = k / steps
        planes = np.broadcast_to(cond, (K + 2, h, w))
        x1 = net(np.concatenate([x, decoded, planes]))
        x += (x1 - x) / np.float32(steps - k)
    return x


@lru_cache(maxsize=16)
def _dct_rows(n: int, period: float) -> np.ndarray:
    """The orthonormal DCT-II basis rows of length ``n`` whose frequency k / (2n) is below 1 / period."""
    keep = max(1, int(np.ceil(2 * n / period)))
    k, i = np.arange(min(keep, n))[:, None], np.arange(n)[None, :]
    c = np.cos(np.pi * (i + 0.5) * k / n) * np.sqrt(2.0 / n)
    c[0] /= np.sqrt(2.0)
    return c


def lowpass(plane: np.ndarray, period: float) -> np.ndarray:
    """The orthogonal projection of a plane on its low DCT frequencies (periods longer than ``period``
    samples in both directions): idempotent, so ``lowpass(x + lowpass(d - x)) == lowpass(d)``."""
    ch, cw = _dct_rows(plane.shape[0], period), _dct_rows(plane.shape[1], period)
    return ch.T @ (ch @ plane.astype(np.float64) @ cw.T) @ cw


def consistent(out: np.ndarray, decoded: np.ndarray, period: float) -> np.ndarray:
    """``out`` with its low-pass replaced by the decoded plane's: out + lowpass(decoded - out)."""
    return out + lowpass(decoded.astype(np.float64) - out, period)
