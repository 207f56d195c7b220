"""The two networks (torch; imported only by ``setup`` with backend=torch, by training and by export, never
when the plugin is imported). Both work on genpost's packed 4:2:0 layout (``genpost.learned.modeling.pack``: luma's
four 2x2 phases, U and V at chroma resolution, each / (2^bitdepth - 1)), so 8 and 10 bits go in directly.

``SyntaxExtractor`` (encoder only): 13 channels (source 6 + decoded 6 + QP plane) -> a K-channel feature
map. The syntax vector is its *spatial mean over the whole frame*, bounded by ``ZMAX * tanh(m / ZMAX)`` and
rounded; the mean is taken outside the network (numpy), so the extractor tiles exactly too.

``Denoiser`` (decoder): the shared trunk's shape (head, 5 residual 3x3 blocks, tail; 14.2 kMAC/px) with
FiLM (per-channel scale and shift) after every block. Input (15 + K channels): state ``x_t`` (6), decoded
(6), and constant planes: QP ``(QP - 27) / 15``, time ``t``, the syntax vector ``z / ZMAX`` (K) and a
"present" flag (1 when a vector was sent, 0 in the default mode). The vector arrives as *constant input
planes*, so a tile carries it exactly (the net reads it back with a spatial mean) and the vector is
computed once per frame, never inside the tiled net. Output: the estimate of the source
``x1_hat = decoded + r`` (6 channels). It starts from the shared trunk (``genpost.learned.trunk``).
"""

from __future__ import annotations

import torch
from torch import nn

from genpost.learned.layers import ResidualConvStack, conv_macs

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


class Denoiser(ResidualConvStack):
    """The shared trunk's shape (``genpost.learned.layers``) over the 31 inputs, with FiLM after every body
    block from the conditioning (QP, t, vector, flag). Zero-initialised FiLM and the trunk's weights
    (``genpost.learned.trunk``) make the untrained net restore exactly as the trunk does."""

    def __init__(self, channels: int = 32, blocks: int = 5):
        super().__init__(IN_CHANNELS, 6, channels, blocks)
        self.channels = channels
        self.film = nn.Sequential(nn.Linear(COND, 64), nn.LeakyReLU(0.1), nn.Linear(64, 2 * channels * blocks))
        nn.init.zeros_(self.film[2].weight)
        nn.init.zeros_(self.film[2].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 15 + K, h, w) -> (N, 6, h, w) source estimate."""
        n = x.shape[0]
        cond = x[:, 12:].mean((2, 3))  # constant planes: the mean is the value, on any tile
        film = self.film(cond).view(n, len(self.body), 2, self.channels, 1, 1)
        h = self.act(self.head(torch.cat([x[:, :12] - 0.5, x[:, 12:]], 1)))
        for i, conv in enumerate(self.body):
            h = h + self.act(conv(h))
            h = h * (1.0 + film[:, i, 0]) + film[:, i, 1]
        return x[:, 6:12] + self.tail(h)


def macs_per_pixel(net: nn.Module) -> float:
    """Multiply-accumulates per luma pixel (convs at chroma resolution: 1/4 of the luma pixels; FiLM runs
    once per frame)."""
    return conv_macs(net) / 4.0
