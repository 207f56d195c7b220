"""The two networks (torch; imported only by ``setup`` with backend=torch, by training and by export).

* ``LatentEncoder`` works on the latent grid (one cell = 8x8 luma): input ``layout.ENC_IN`` channels
  (space-to-depth of the scaled residual and the decode, plus a QP plane), output ``layout.LATENT``
  channels, quantised by the plugin with a per-frame step.
* ``ResidualDenoiser`` works at chroma resolution on genpost's packed layout: input ``layout.DEC_IN``
  channels = noisy residual ``x_t`` (6), decode (6), QP plane, time plane ``t``, upsampled dequantised
  latent (4), latent-present flag. Output: the clean residual ``x0`` (6, in units of ``layout.RS`` times the
  full range), the x0-parameterisation of DDIM. At ``t = 1`` with ``x_t = 0`` its output is the posterior
  mean of the residual given decode and latent (the default one-step mode).
"""

from __future__ import annotations

import torch
from torch import nn

from genpost.learned.layers import ResidualConvStack, conv_macs

from .layout import DEC_IN, ENC_IN, LATENT


class LatentEncoder(nn.Module):
    def __init__(self, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ENC_IN, channels, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(channels, LATENT, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResidualDenoiser(ResidualConvStack):
    def __init__(self, channels: int = 32, blocks: int = 5):
        super().__init__(DEC_IN, 6, channels, blocks)  # zero tail: x0 = 0 at the start, the identity restoration

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(torch.cat([x[:, :6], x[:, 6:12] - 0.5, x[:, 12:]], 1))


def macs_per_pixel(net: nn.Module, cell_luma: int) -> float:
    """Multiply-accumulates per luma pixel for a conv net that runs on a grid of ``cell_luma`` x
    ``cell_luma`` luma samples per position (2 at chroma resolution, 8 on the latent grid)."""
    return conv_macs(net) / float(cell_luma * cell_luma)
