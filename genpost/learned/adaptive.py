"""``AdaptiveNetwork``: what a learned plugin holds to take part in content adaptation.

At the decoder it turns the period's update (``ctx.update``) into the network that runs it: the shipped
weights plus the decoded update (``adapt.apply``), in a network built once per period. At the encoder
``choose`` is the body of ``PostProcessor.adapt``: it reads the plugin's ``adapt`` options, tunes, and
picks the update by RD (``genpost.learned.rd``). The plugin supplies only what is its own: its spec, how
its network's output becomes a residual (``forward``, for training) and how it restores a frame with a
given network (``restored``, to measure D exactly as the decoder will).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np

from .. import options as opt
from ..install import hint
from ..postprocessor import Context, PayloadError
from ..types import Frame
from . import adapt
from .finetune import Recipe, budget_steps
from .modeling import Network, runtime_installed

MODES = {"auto": ("small", "full"), "off": (), "small": ("small",), "full": ("full",)}
# the options a plugin taking part declares too (``PostProcessor.options``)
DECLARED = (
    opt.choice("adapt", "auto", MODES, "encoder: content adaptation per period (auto: RD among none, small, full)"),
    opt.integer("adapt_steps", "300", 0, 100000, "encoder: most fine-tuning steps per mode and period"),
    opt.number("adapt_budget", "2", 0, 1e6,
               "encoder: tuning budget in seconds per 720p frame of the period on a 2-core CPU, as steps (0: none)"),
    opt.number("adapt_seconds", "0", 0, 1e6, "encoder: time budget per mode and period (0: none)"),
)
OPTIONS = opt.defaults(DECLARED)
_BY_NAME = opt.by_name(DECLARED)


class AdaptiveNetwork:
    def __init__(self, who: str, spec: adapt.AdaptSpec, weights_sha256: str):
        self.who, self.spec, self.tag = who, spec, adapt.weights_tag(weights_sha256)
        self._shipped: dict[str, np.ndarray] | None = None
        self._adapted: tuple[bytes, Network, Network] | None = None  # (update, shipped engine, adapted engine)

    def shipped(self, generic: Network) -> dict[str, np.ndarray]:
        if self._shipped is None:
            self._shipped = generic.shipped_state()
        return self._shipped

    def decode(self, update: bytes, generic: Network) -> adapt.Update:
        sizes = self.spec.sizes(self.shipped(generic))
        try:
            return adapt.decode_update(update, self.spec, sizes, self.tag)
        except adapt.UpdateError as exc:
            raise PayloadError(f"{self.who} update: {exc}") from None

    def engine(self, generic: Network, update: bytes | None) -> Network:
        """``generic`` itself, or the network running ``update`` (built once per update and engine)."""
        if update is None:
            return generic
        if self._adapted is None or self._adapted[0] != update or self._adapted[1] is not generic:
            state = adapt.apply(self.shipped(generic), self.spec, self.decode(update, generic))
            self._adapted = (update, generic, generic.with_state(state))
        return self._adapted[2]

    def choose(
        self,
        generic: Network,
        pairs: Sequence[tuple[Frame, Frame]],
        ctx: Context,
        qp: int,
        lam: float,
        make_module: Callable[[], object],
        forward: Callable,
        restored: Callable[[Network, Frame, np.ndarray], Frame],
    ) -> bytes:
        """The period's update payload (b"" for none). ``lam``: ``ctx.lagrangian`` times the plugin's
        ``lambda_scale``. ``restored(net, decoded, packed)`` is the frame the plugin's restoration gives
        with network ``net`` on a decode packed with its QP plane."""
        mode = str(ctx.value(self.who, _BY_NAME["adapt"]))
        if not MODES[mode] or not pairs:
            return b""
        if not runtime_installed("torch"):
            logging.getLogger("genpost").warning(
                "%s: content adaptation needs torch (%s); sending no update", self.who, hint("adapt")
            )
            return b""
        from torch import nn

        from . import rd
        from .layers import conv_macs

        train = rd.training_pairs(pairs, qp)

        def measure(state) -> np.ndarray:
            net = generic if state is None else generic.with_state(state)
            total = np.zeros(3)
            for (src, dec), (x, _) in zip(pairs, train):
                out = restored(net, dec, x)
                total += np.minimum(rd.plane_sse(src, out), rd.plane_sse(src, dec))
            return total

        shipped = self.shipped(generic)
        problem = rd.Problem(self.spec, shipped, self.tag, make_module, forward, measure)
        frames = max(1, ctx.period_frames)
        module = make_module()
        assert isinstance(module, nn.Module)  # the plugin's torch network (what finetune tunes)
        cap = budget_steps(float(ctx.value(self.who, _BY_NAME["adapt_budget"])), frames, pairs[0][1].y.size,
                           len(MODES[mode]), conv_macs(module))  # fmt: skip
        steps = int(ctx.value(self.who, _BY_NAME["adapt_steps"]))
        recipe = Recipe(
            steps=steps if cap is None else min(steps, cap),
            seconds=float(ctx.value(self.who, _BY_NAME["adapt_seconds"])) or float("inf"),
        )
        base = np.sum([rd.plane_sse(src, dec) for src, dec in pairs], 0)
        payload, _ = rd.choose(problem, train, MODES[mode], lam=lam, overhead_bits=ctx.record_overhead_bits, frames=frames,
                               recipe=recipe, max_value=pairs[0][1].max_value, base=base, base_bits=ctx.base_bits,
                               lambda_scale=lam / ctx.lagrangian if ctx.lagrangian else 1.0)  # fmt: skip
        return payload
