"""torch building blocks the learned plugins' networks share (imported only by a plugin's ``model`` module,
i.e. by its torch backend, training and export; never when a plugin is imported).

``ResidualConvStack`` is the trunk of gan-enhance's generator, rectified-flow's velocity net and
residual-diffusion's denoiser: a 3x3 ``head`` conv, ``blocks`` residual 3x3 convs in ``body``
(``h = h + act(conv(h))``) and a zero-initialised 3x3 ``tail``, all under LeakyReLU(0.1). Its parameter
names (``head.*``, ``body.N.*``, ``tail.*``) are the ones the shipped safetensors hold and the ones
``genpost.learned.adapt`` adapts, so the class keeps them.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualConvStack(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, channels: int, blocks: int):
        super().__init__()
        self.head = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(blocks))
        self.tail = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        nn.init.zeros_(self.tail.weight)  # start as the identity (a zero residual): the residual is small
        nn.init.zeros_(self.tail.bias)  # type: ignore[arg-type]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """head, the residual body and the tail on ``x`` (already shifted/arranged by the subclass)."""
        h = self.act(self.head(x))
        for conv in self.body:
            h = h + self.act(conv(h))
        return self.tail(h)


def conv_macs(net: nn.Module) -> float:
    """Multiply-accumulates of all ``Conv2d``s of ``net`` per output position of the grid they run on."""
    return float(sum(m.in_channels * m.out_channels * m.kernel_size[0] * m.kernel_size[1] for m in net.modules() if isinstance(m, nn.Conv2d)))
