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

IN_CHANNELS = 7  # 4 luma phases + U + V + QP plane
OUT_CHANNELS = 12  # r_dist (6) + r_perc (6)


class Generator(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 5):
        super().__init__()
        self.head = nn.Conv2d(IN_CHANNELS, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(blocks))
        self.tail = nn.Conv2d(channels, OUT_CHANNELS, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.tail.weight)  # start as the identity: the residual is small and hard to find
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 7, h, w) packed planes in 0..1 and the QP plane -> (N, 12, h, w) residuals."""
        h = self.act(self.head(x - 0.5))
        for conv in self.body:
            h = h + self.act(conv(h))
        return self.tail(h)


class Generator2(nn.Module):
    """Two scales: a thin path at chroma resolution keeps detail, a wider one at half of it (stride-2 conv
    down, 1x1 conv + pixel shuffle up) sees 4x the area per MAC, which deblocking of large transform
    blocks needs. Inputs must have even height and width (``genpost.modeling.Network(multiple=2)``)."""

    def __init__(self, fine: int = 24, coarse: int = 64, blocks: int = 4):
        super().__init__()
        self.head = nn.Conv2d(IN_CHANNELS, fine, 3, padding=1)
        self.pre = nn.Conv2d(fine, fine, 3, padding=1)
        self.down = nn.Conv2d(fine, coarse, 3, stride=2, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(coarse, coarse, 3, padding=1) for _ in range(blocks))
        self.up = nn.Conv2d(coarse, 4 * fine, 1)
        self.post = nn.Conv2d(fine, fine, 3, padding=1)
        self.tail = nn.Conv2d(fine, OUT_CHANNELS, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.head(x - 0.5))
        h = h + self.act(self.pre(h))
        c = self.act(self.down(h))
        for conv in self.body:
            c = c + self.act(conv(c))
        h = h + nn.functional.pixel_shuffle(self.up(c), 2)
        h = h + self.act(self.post(h))
        return self.tail(h)


class Generator3(nn.Module):
    """Three scales (chroma resolution, 1/2, 1/4)."""

    def __init__(self, fine: int = 24, mid: int = 48, coarse: int = 96, blocks: int = 3):
        super().__init__()
        self.head = nn.Conv2d(IN_CHANNELS, fine, 3, padding=1)
        self.pre = nn.Conv2d(fine, fine, 3, padding=1)
        self.down1 = nn.Conv2d(fine, mid, 3, stride=2, padding=1)
        self.mid1 = nn.Conv2d(mid, mid, 3, padding=1)
        self.down2 = nn.Conv2d(mid, coarse, 3, stride=2, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(coarse, coarse, 3, padding=1) for _ in range(blocks))
        self.up2 = nn.Conv2d(coarse, 4 * mid, 1)
        self.mid2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.up1 = nn.Conv2d(mid, 4 * fine, 1)
        self.post = nn.Conv2d(fine, fine, 3, padding=1)
        self.tail = nn.Conv2d(fine, OUT_CHANNELS, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shuffle = nn.functional.pixel_shuffle
        h = self.act(self.head(x - 0.5))
        h = h + self.act(self.pre(h))
        m = self.act(self.down1(h))
        m = m + self.act(self.mid1(m))
        c = self.act(self.down2(m))
        for conv in self.body:
            c = c + self.act(conv(c))
        m = m + shuffle(self.up2(c), 2)
        m = m + self.act(self.mid2(m))
        h = h + shuffle(self.up1(m), 2)
        h = h + self.act(self.post(h))
        return self.tail(h)


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


def macs_per_pixel(g: nn.Module) -> float:
    """Multiply-accumulates per luma pixel, counted on a forward pass (layers run at several scales)."""
    total = 0

    def count(m: nn.Conv2d, _inputs, out: torch.Tensor) -> None:
        nonlocal total
        total += m.in_channels // m.groups * m.out_channels * m.kernel_size[0] * m.kernel_size[1] * out.shape[-2] * out.shape[-1]

    hooks = [m.register_forward_hook(count) for m in g.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        g(torch.zeros(1, IN_CHANNELS, 64, 64))
    for h in hooks:
        h.remove()
    return total / (128 * 128)  # 64x64 chroma-resolution input = 128x128 luma pixels


def pack(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, qp_plane: torch.Tensor) -> torch.Tensor:
    """(N,1,H,W) luma, (N,1,H/2,W/2) chroma, (N,1,H/2,W/2) QP -> (N,7,H/2,W/2)."""
    return torch.cat([nn.functional.pixel_unshuffle(y, 2), u, v, qp_plane], 1)
