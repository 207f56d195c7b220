"""The velocity network (torch; imported only by ``setup`` with backend=torch, by training and by export,
never when the plugin is imported).

It works on 4:2:0 directly, on genpost's packed layout (``genpost.learned.modeling.pack``): luma's four 2x2 phases,
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

from genpost.learned.layers import ResidualConvStack, conv_macs

IN_CHANNELS = 14  # x_t (6) + decoded (6) + QP plane + t plane
OUT_CHANNELS = 6


class VelocityNet(ResidualConvStack):
    def __init__(self, channels: int = 32, blocks: int = 5):
        super().__init__(IN_CHANNELS, OUT_CHANNELS, channels, blocks)  # zero tail: v = 0, the flow starts as the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 14, h, w) = [x_t, decoded, qp, t] -> (N, 6, h, w) velocity."""
        xt, decoded, t = x[:, :6], x[:, 6:12], x[:, 13:14]
        r = self.trunk(torch.cat([x[:, :12] - 0.5, x[:, 12:]], 1))
        return (decoded + r - xt) / (1.0 - t).clamp_min(1e-3)


def macs_per_pixel(net: VelocityNet) -> float:
    """Multiply-accumulates per luma pixel per step (convs run at chroma resolution: 1/4 of the luma pixels)."""
    return conv_macs(net) / 4.0
