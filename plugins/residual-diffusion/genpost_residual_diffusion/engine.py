"""The two networks as ``genpost.learned.modeling.Network``s (onnxruntime by default, or torch; overlapping tiles;
weights only through ``genpost.learned.weights``) and the DDIM sampler over the residual."""

from __future__ import annotations

import numpy as np

from genpost.learned.modeling import Network, NetworkSpec

from .layout import CELL, LATENT, alpha_sigma

WHO = "residual-diffusion"
ENCODER = ("latent_encoder_v1.onnx", "latent_encoder_v1.safetensors")
DENOISER = ("residual_denoiser_v1.onnx", "residual_denoiser_v1.safetensors")
# tiles and halos are whole latent cells (CELL chroma samples = 8 luma) so tile edges sit on the latent grid
ENCODER_HALO, ENCODER_TILE = 4, 64  # on the latent grid: receptive radius 3 (3 convs of 3x3)
DENOISER_HALO, DENOISER_TILE = 2 * CELL, 64 * CELL  # at chroma resolution: receptive radius 6 (6 convs of 3x3)

# ``encoder(owner, backend, device)``: ``encoder(layout.encoder_input(...)) -> latent (LATENT, rows, cols)``
encoder = NetworkSpec(WHO, ENCODER, f"{__package__}.model:LatentEncoder", LATENT, ENCODER_HALO, ENCODER_TILE)
# ``denoiser(owner, backend, device)``: ``denoiser(inputs (DEC_IN, h, w)) -> x0 (6, h, w)``
denoiser = NetworkSpec(WHO, DENOISER, f"{__package__}.model:ResidualDenoiser", 6, DENOISER_HALO, DENOISER_TILE)
make_denoiser = denoiser.make_module


def sample(net: Network, cond: np.ndarray, steps: int, noise: np.ndarray | None) -> np.ndarray:
    """The residual ``x0`` (6, h, w) in diffusion units. ``cond`` = decode + QP plane (7) and latent +
    flag (LATENT + 1) as (7, h, w) and (LATENT + 1, h, w) stacked. ``steps`` 0: the posterior-mean mode
    (one evaluation at t = 1 from x_t = 0); 1..8: DDIM (eta = 0) from ``noise`` over t = 1, 1 - 1/N, ...."""
    decoded, latent = cond[:7], cond[7:]
    h, w = cond.shape[1:]
    tplane = np.empty((1, h, w), np.float32)

    def x0(xt: np.ndarray, t: float) -> np.ndarray:
        tplane.fill(t)
        return net(np.concatenate([xt, decoded, tplane, latent]))

    if steps == 0 or noise is None:
        return x0(np.zeros((6, h, w), np.float32), 1.0)
    x = noise.astype(np.float32)
    for k in range(steps):
        t, t_next = 1.0 - k / steps, 1.0 - (k + 1) / steps
        pred = x0(x, t)
        if k == steps - 1:
            return pred
        a, s = alpha_sigma(t)
        eps = (x - np.float32(a) * pred) / np.float32(s)
        a2, s2 = alpha_sigma(t_next)
        x = np.float32(a2) * pred + np.float32(s2) * eps
    return x
