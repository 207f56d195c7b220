"""The two networks (torch; imported only by ``setup`` with backend=torch, by training and by export, never
when the plugin is imported). Both work on genpost's packed 4:2:0 layout (``genpost.modeling.pack``: luma's
four 2x2 phases, U and V at chroma resolution, each / (2^bitdepth - 1)), so 8 and 10 bits go in directly.

``SyntaxExtractor`` (encoder only): 13 channels (source 6 + decoded 6 + QP plane) -> a K-channel feature
map. The syntax vector is its *spatial mean over the whole frame*, bounded by ``ZMAX * tanh(m / ZMAX)`` and
rounded; the mean is taken outside the network (numpy), so the extractor tiles exactly too.

``Denoiser`` (decoder): a 2-scale U-Net. Input (15 + K channels): state ``x_t`` (6), decoded (6), and
constant planes: QP ``(QP - 27) / 15``, time ``t``, the syntax vector ``z / ZMAX`` (K) and a "present"
flag (1 when a vector was sent, 0 in the default mode). The vector arrives as *constant input planes*, so a
tile carries it exactly (the net reads it back with a spatial mean) and the vector is computed once per
frame, never inside the tiled net. The conditioning (vector, flag, QP, t) drives FiLM (per-channel scale
and shift) at three places: full scale encoder, half scale bottleneck, full scale decoder. Output: the
estimate of the source ``x1_hat = decoded + r`` (6 channels, the residual's last conv zero-initialised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

K = 16  # syntax vector length
ZMAX = 15  # quantised values lie in -ZMAX..ZMAX
IN_CHANNELS = 15 + K  # x_t 6, decoded 6, qp, t, z (K), present
EXTRACTOR_IN = 13  # source 6, decoded 6, qp
COND = K + 3  # z, present, qp, t
GAIN = 8.0  # extractor output scale: lets the frame mean reach the integer grid from a small init


class SyntaxExtractor(nn.Module):
    def __init__(self, channels: int = 16, gain: float = GAIN):
        super().__init__()
        self.gain = gain  # stage 1 of training ran with 1.0, stage 2 and inference with GAIN
        self.c1 = nn.Conv2d(EXTRACTOR_IN, channels, 3, padding=1)
        self.c2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c3 = nn.Conv2d(channels, K, 1)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 13, h, w) -> (N, K, h, w) features; the vector is their spatial mean (outside)."""
        src, dec = x[:, :6], x[:, 6:12]
        h = self.act(self.c1(torch.cat([(src - dec) * 8.0, dec - 0.5, x[:, 12:13]], 1)))
        return self.gain * self.c3(self.act(self.c2(h)))


class Denoiser(nn.Module):
    def __init__(self, c1: int = 24, c2: int = 48):
        super().__init__()
        self.c1, self.c2 = c1, c2
        self.e1 = nn.Conv2d(12, c1, 3, padding=1)
        self.e2 = nn.Conv2d(c1, c1, 3, padding=1)
        self.down = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.m1 = nn.Conv2d(c2, c2, 3, padding=1)
        self.m2 = nn.Conv2d(c2, c2, 3, padding=1)
        self.up = nn.Conv2d(c2, c1, 1)
        self.d1 = nn.Conv2d(2 * c1, c1, 3, padding=1)
        self.out = nn.Conv2d(c1, 6, 3, padding=1)
        self.film = nn.Sequential(nn.Linear(COND, 64), nn.LeakyReLU(0.1), nn.Linear(64, 2 * (c1 + c2 + c1)))
        nn.init.zeros_(self.film[2].weight)
        nn.init.zeros_(self.film[2].bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.LeakyReLU(0.1)

    @staticmethod
    def _mod(h: torch.Tensor, gb: torch.Tensor) -> torch.Tensor:
        g, b = gb.chunk(2, 1)
        return h * (1.0 + g[:, :, None, None]) + b[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 15 + K, h, w) -> (N, 6, h, w) source estimate."""
        xt, dec = x[:, :6], x[:, 6:12]
        cond = x[:, 12:].mean((2, 3))  # constant planes: the mean is the value, on any tile
        f = self.film(cond)
        c1, c2 = self.c1, self.c2
        f1, f2, f3 = f[:, : 2 * c1], f[:, 2 * c1 : 2 * (c1 + c2)], f[:, 2 * (c1 + c2) :]
        h1 = self.act(self.e1(torch.cat([xt - 0.5, dec - 0.5], 1)))
        h1 = self._mod(self.act(self.e2(h1)), f1)
        h2 = self.act(self.down(h1))
        h2 = self._mod(self.act(self.m1(h2)), f2)
        h2 = h2 + self.act(self.m2(h2))
        up = F.interpolate(self.up(h2), scale_factor=2.0, mode="nearest")[:, :, : h1.shape[2], : h1.shape[3]]
        h = self._mod(self.act(self.d1(torch.cat([h1, up], 1))), f3)
        return dec + self.out(h)


def macs_per_pixel(net: nn.Module) -> float:
    """Multiply-accumulates per luma pixel (convs at chroma resolution, 1/4 of the luma pixels; the
    strided conv and the half-scale convs at a quarter of that)."""
    total = 0.0
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            per = m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            total += per / 4.0 if name in ("down", "m1", "m2", "up") else per
    return total / 4.0
