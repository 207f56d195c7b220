"""The velocity network (torch; imported only by ``setup`` with backend=torch, by training and by export,
never when the plugin is imported).

It works on 4:2:0 directly, on genpost's packed layout (``genpost.modeling.pack``): luma's four 2x2 phases,
U and V at chroma resolution, each divided by the bit depth's maximum. Input, 14 channels: the current
state ``x_t`` (6), the decoded frame (6), a constant QP plane ``(QP - 27) / 15`` and a constant time plane
``t``. Output: the velocity ``v`` (6 channels); an Euler step is ``x <- x + dt * v``.

The convolutions predict the source as a residual on the decoded frame, ``x1_hat = decoded + r``, and the
velocity is the straight line from the current state to it, ``v = (x1_hat - x_t) / (1 - t)`` (the
x1-prediction parameterisation of rectified flow). Removing the start noise is thereby exact by
construction; the network spends its capacity on the coding artefacts, and one Euler step from any start
time is already a regressor.
"""

from __future__ import annotations

import torch
from torch import nn

IN_CHANNELS = 14  # x_t (6) + decoded (6) + QP plane + t plane
OUT_CHANNELS = 6


class VelocityNet(nn.Module):
    def __init__(self, channels: int = 32, blocks: int = 4):
        super().__init__()
        self.head = nn.Conv2d(IN_CHANNELS, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(blocks))
        self.tail = nn.Conv2d(channels, OUT_CHANNELS, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.tail.weight)  # v = 0 at the start: the flow begins as the identity
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 14, h, w) = [x_t, decoded, qp, t] -> (N, 6, h, w) velocity."""
        xt, decoded, t = x[:, :6], x[:, 6:12], x[:, 13:14]
        h = self.act(self.head(torch.cat([x[:, :12] - 0.5, x[:, 12:]], 1)))
        for conv in self.body:
            h = h + self.act(conv(h))
        return (decoded + self.tail(h) - xt) / (1.0 - t).clamp_min(1e-3)


def macs_per_pixel(net: VelocityNet) -> float:
    """Multiply-accumulates per luma pixel per step (convs run at chroma resolution: 1/4 of the luma pixels)."""
    per_half = sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] for m in net.modules() if isinstance(m, nn.Conv2d))
    return per_half / 4.0
