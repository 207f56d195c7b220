"""The generator and the patch discriminator (torch; imported only by ``setup`` with backend=torch,
by training and by export, never when the plugin is imported).

The generator works on 4:2:0 directly: luma is pixel-unshuffled 2x2 to four half-resolution channels and
stacked with U and V (6 channels at chroma resolution), plus one constant channel holding the QP, all
normalised by the bit depth so 8- and 10-bit frames look alike. It predicts two residuals for those six
channels: ``r_dist`` (trained for L1) and ``r_perc`` (fine-tuned with an adversarial loss). The plugin
blends them per block: ``out = x + s * (r_dist + beta * (r_perc - r_dist))``.
"""

from __future__ import annotations

import torch
from torch import nn

from genpost.learned.layers import ResidualConvStack, conv_macs

IN_CHANNELS = 7  # 4 luma phases + U + V + QP plane
OUT_CHANNELS = 12  # r_dist (6) + r_perc (6)


class Generator(ResidualConvStack):
    def __init__(self, channels: int = 32, blocks: int = 5):
        super().__init__(IN_CHANNELS, OUT_CHANNELS, channels, blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 7, h, w) packed planes in 0..1 and the QP plane -> (N, 12, h, w) residuals."""
        return self.trunk(x - 0.5)


class PatchDiscriminator(nn.Module):
    """A small PatchGAN on the packed 6-channel planes (one logit per ~22x22 half-res patch)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(6, c, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 2 * c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 1, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def macs_per_pixel(g: Generator) -> float:
    """Multiply-accumulates per luma pixel (convs run at half resolution: 1/4 of the luma pixels)."""
    return conv_macs(g) / 4.0


def pack(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, qp_plane: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W) luma, (N,1,H/2,W/2) chroma, (N,1,H/2,W/2) QP -> (N,7,H/2,W/2)."""
    return torch.cat([nn.functional.pixel_unshuffle(y, 2), u, v, qp_plane], 1)
