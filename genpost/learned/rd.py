"""The encoder's rate-distortion choice of a content-adaptive update (``PostProcessor.adapt``).

Candidates: no update (the shipped weights), and for each adaptation mode (``small``, ``full``) the tuned
deltas quantised at a few step sizes. Each is measured with the plugin's own restoration (the inference
the decoder runs, through ``measure``) on the period's sample, per plane, scaled to the period, and
charged every bit it costs: the update, its record, and a frame-payload record naming it (while an update
is in force no frame runs the default mode). ``pick`` chooses so that no plane's BD-rate rises: each
plane's gain must pay for the bits at that plane's own lambda (``plane_lambdas``). A plane restores only
where it lowers that plane's error, so "plugin off" for a plane is inside every candidate's D.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..rdcost import SLOPES as SLOPES  # the per-plane rule, shared with wiener: re-exported here
from ..rdcost import pick as pick
from ..rdcost import plane_lambdas as plane_lambdas
from ..rdcost import plane_sse as plane_sse
from ..types import Frame
from . import adapt
from .finetune import Recipe, finetune
from .modeling import pack

FRAME_PAYLOAD_BITS = 64  # a frame payload naming the update (prefix + a one-level body)
# quantiser step exponents tried per mode (step = 2**-e): coarse and fine
EXPONENTS = ({"bias": 9, "scale": 8, "tail": 11}, {"bias": 11, "scale": 10, "tail": 13})


def training_pairs(pairs: Sequence[tuple[Frame, Frame]], qp: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(packed decode with QP plane (7, h, w), target residual source - decode (6, h, w)) per pair."""
    out = []
    for src, dec in pairs:
        x = pack(dec.y, dec.u, dec.v, dec.max_value, qp)
        out.append((x, pack(src.y, src.u, src.v, src.max_value)[:6] - x[:6]))
    return out


@dataclass(frozen=True)
class Problem:
    """One plugin's adaptation problem for one period."""

    spec: adapt.AdaptSpec
    shipped: dict[str, np.ndarray]
    tag: int
    make_module: Callable[[], object]
    forward: Callable  # forward(net, x) -> (N, 6, h, w) residual the plugin adds
    measure: Callable[[dict[str, np.ndarray] | None], np.ndarray]  # per-plane D on the sample (None: shipped weights)


def choose(
    problem: Problem,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    modes: Sequence[str],
    *,
    lam: float,
    overhead_bits: int,
    frames: int,
    recipe: Recipe,
    max_value: int,
    base: np.ndarray,
    base_bits: float | None = None,
    lambda_scale: float = 1.0,
) -> tuple[bytes, dict]:
    """(the update payload ``pick`` prefers, or b"" for none; a log of every candidate's D and bits).

    ``base``: per-plane SSE of the decode on the sample; ``base_bits``: the base's bits per frame (for the
    planes' lambdas, ``plane_lambdas``; None: ``lam`` for every plane); ``lambda_scale``: the plugin's
    ``lambda_scale`` option, already in ``lam`` and applied to the planes' lambdas too."""
    scale = frames / max(1, len(pairs))
    base = np.asarray(base, np.float64) * scale
    lambdas = plane_lambdas(base, base_bits * frames if base_bits else None, lam / lambda_scale) * lambda_scale
    none = problem.measure(None) * scale
    candidates, log = [(none, 0.0, b"")], {"none": {"D": none.tolist(), "bits": 0}}
    pixels = sum(t.size for _, t in pairs) / max(1, len(pairs))  # samples per frame, packed scale
    # one bit's worth of squared error in the packed 0..1 scale, per sample of the training loss (the
    # batch mean), at the smallest plane lambda (the strictest)
    bit_cost = float(lambdas.min()) / (max_value**2) / (pixels * frames)
    sizes = problem.spec.sizes(problem.shipped)
    for mode in modes:
        groups = adapt.MODES[mode]
        hint = {g: 2.0 ** -EXPONENTS[0][g] for g in groups if g in adapt.CODED}
        deltas = finetune(problem.make_module, problem.shipped, problem.spec, groups, pairs, problem.forward,
                          recipe, bit_cost, hint)  # fmt: skip
        for exps in EXPONENTS:
            update = adapt.quantize(deltas, exps)
            payload = adapt.encode_update(update, problem.tag)
            decoded = adapt.decode_update(payload, problem.spec, sizes, problem.tag)  # what the decoder gets
            d = problem.measure(adapt.apply(problem.shipped, problem.spec, decoded)) * scale
            # its record, and the frame payload record that must name it (the default mode cannot)
            bits = 8 * len(payload) + 2 * overhead_bits + FRAME_PAYLOAD_BITS
            candidates.append((d, float(bits), payload))
            log[f"{mode}@{exps['bias']}"] = {"D": d.tolist(), "bits": bits}
    return pick(candidates, base, lambdas), log
