"""The encoder's fine-tuning of adaptable parameter groups on one period's (source, reconstruction) pairs.

Only the deltas train; the shipped weights stay frozen, so an update always applies to them (never to an
earlier update). The loss is the restored MSE over all six packed planes (= SSE over Y, U and V) plus the
update's rate: an L1 term on the deltas in units of their quantiser step, weighted so that one bit costs
what lambda says it is worth in squared error over the frames the update serves. torch is imported here,
when adaptation runs, never by the decoder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .adapt import GROUPS, AdaptSpec

LOG2E = 1.4426950408889634
REFERENCE_PIXELS = 1280 * 720
REFERENCE_MACS_PER_SECOND = 3.2e10
"""Multiply-accumulates per second one tuning step reaches on the reference machine (2 CPU cores, torch
2.13): gan-enhance's 52k-weight generator runs a step (batch 8 of 48x48 packed crops, forward and
backward = 3x the forward MACs) in 0.09 s there (``benchmarks/adapt_time.py``)."""
MIN_STEPS = 60  # below this a period's tune is noise: a short period still gets this many
MEASURE_SHARE = 0.2  # of the budget, left for measuring the candidates with the decoder's inference


@dataclass(frozen=True)
class Recipe:
    """How hard to tune: Adam ``lr`` for ``steps`` (or until ``seconds``), ``batch`` random ``crop``-sided
    crops (at chroma resolution) per step."""

    steps: int = 300
    lr: float = 3e-3
    batch: int = 8
    crop: int = 48
    seconds: float = 60.0
    seed: int = 0


def budget_steps(
    budget: float, frames: int, pixels: int, modes: int, macs_per_sample: float, recipe: Recipe = Recipe()
) -> int | None:
    """Tuning steps per mode that keep a period's adaptation within ``budget`` seconds per 720p frame on
    the reference machine (None: ``budget`` 0, no cap). ``pixels``: luma samples per frame;
    ``macs_per_sample``: the network's forward MACs per packed (chroma-resolution) sample
    (``layers.conv_macs``). Steps, not
    seconds, so the encoder's output never depends on the machine's load (torch's thread count can still
    change the tuned deltas' last bits: its float sums are split by thread)."""
    if budget <= 0:
        return None
    seconds = budget * frames * pixels / REFERENCE_PIXELS * (1.0 - MEASURE_SHARE) / max(1, modes)
    step = 3.0 * macs_per_sample * recipe.batch * recipe.crop**2 / REFERENCE_MACS_PER_SECOND
    return max(MIN_STEPS, int(seconds / step))


def finetune(
    make_module: Callable[[], object],
    state: dict[str, np.ndarray],
    spec: AdaptSpec,
    groups: Sequence[str],
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    forward: Callable,
    recipe: Recipe = Recipe(),
    bit_cost: float = 0.0,
    step_hint: dict[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Float deltas per group (gain as the gain itself) that lower the restored error on ``pairs``.

    ``pairs``: (packed network input (C, h, w), target residual (6, h, w)) at the same scale the plugin
    restores in. ``forward(net, x)`` -> the (N, 6, h, w) residual the plugin adds for input batch ``x``,
    where ``net`` runs the network with the adapted weights. ``bit_cost``: the squared-error (in the
    packed 0..1 scale, per sample of the training batch) one bit of update is worth; ``step_hint``: the
    quantiser step each coded group will likely get (for the rate term)."""
    import torch
    from torch.func import functional_call

    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    module = make_module().eval()
    base = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()}
    channels = [int(state[f"{c}.bias"].size) for c in spec.convs]
    sizes = spec.sizes(state)
    deltas = {g: torch.zeros(sizes[g], requires_grad=True) for g in groups if g in GROUPS}
    opt = torch.optim.Adam(list(deltas.values()), recipe.lr)
    planes = torch.tensor(spec.out_planes)
    hint = step_hint or {}

    def adapted() -> dict:
        params, offset = dict(base), 0
        for name, n in zip(spec.convs, channels):
            w, b = base[f"{name}.weight"], base[f"{name}.bias"]
            if "scale" in deltas:
                w = w * (1.0 + deltas["scale"][offset : offset + n])[:, None, None, None]
            if "bias" in deltas:
                b = b + deltas["bias"][offset : offset + n]
            offset += n
            if name == spec.tail:
                if "tail" in deltas:
                    w = w + deltas["tail"].reshape(w.shape)
                if "gain" in deltas:
                    g = (1.0 + deltas["gain"])[planes]
                    w, b = w * g[:, None, None, None], b * g
            params[f"{name}.weight"], params[f"{name}.bias"] = w, b
        return params

    def rate() -> torch.Tensor:
        """Approximate bits: |delta| / (step * Laplace scale) * log2(e), with the scale taken as 1 step."""
        total = torch.zeros(())
        for g, d in deltas.items():
            if g in hint:
                total = total + d.abs().sum() * (LOG2E / hint[g])
        return total

    start = time.monotonic()
    for _ in range(recipe.steps):
        x, t = _batch(pairs, rng, recipe.batch, recipe.crop)
        params = adapted()
        r = forward(lambda inp: functional_call(module, params, (inp,)), torch.from_numpy(x))
        sse = ((r - torch.from_numpy(t)) ** 2).mean()
        loss = sse + bit_cost * rate()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if time.monotonic() - start > recipe.seconds:
            break
    out = {g: d.detach().numpy().astype(np.float32) for g, d in deltas.items()}
    if "gain" in out:
        out["gain"] = 1.0 + out["gain"]
    return out


def _batch(pairs, rng: np.random.Generator, size: int, crop: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ts = [], []
    for _ in range(size):
        x, t = pairs[int(rng.integers(len(pairs)))]
        h, w = x.shape[1:]
        c = min(crop, h, w)
        y0, x0 = int(rng.integers(h - c + 1)), int(rng.integers(w - c + 1))
        xs.append(x[:, y0 : y0 + c, x0 : x0 + c])
        ts.append(t[:, y0 : y0 + c, x0 : x0 + c])
    return np.stack(xs), np.stack(ts)
