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

from ..modeling import pack
from ..types import Frame
from . import adapt
from .finetune import Recipe, finetune

FRAME_PAYLOAD_BITS = 64  # a frame payload naming the update (prefix + a one-level body)
# quantiser step exponents tried per mode (step = 2**-e): coarse and fine
EXPONENTS = ({"bias": 9, "scale": 8, "tail": 11}, {"bias": 11, "scale": 10, "tail": 13})


SLOPES = np.array([5.0, 3.0, 3.0])
"""dB of PSNR-Y, -U, -V per neper of rate along an x265 anchor's RD curve (carphone, x265 medium, QP 27-42:
5.2, 2.6, 3.1; BBB 416x240: similar): how much a plane must gain to pay for extra bits in BD-rate terms."""


def plane_lambdas(base_sse: np.ndarray, base_bits: float | None, fallback: float) -> np.ndarray:
    """SSE per bit each plane must gain for side info to keep that plane's BD-rate from rising.

    Adding dR bits to a base of R bits moves it dR/R nepers along the anchor's curve, worth ``SLOPES[p]``
    dB each; a plane gains 10*log10(e) * dSSE/SSE dB. So a plane pays when dSSE >= SSE * SLOPES[p] *
    ln(10)/10 * dR/R: lambda_p = SSE_p * 0.2303 * SLOPES[p] / R, with SSE and R over the same frames. Without
    the base's size (``base_bits`` None) every plane gets ``fallback`` (the encoder's own lambda)."""
    if not base_bits:
        return np.full(3, float(fallback))
    return np.maximum(np.asarray(base_sse, np.float64), 1.0) * (np.log(10) / 10) * SLOPES / float(base_bits)


def pick(candidates: Sequence[tuple[np.ndarray, float, bytes]], base: np.ndarray, lambdas: np.ndarray) -> bytes:
    """The payload to send among (per-plane D (3,), bits, payload) candidates, "never worse per plane" first.

    A candidate's margin on plane p is what it gains there, in bits at that plane's lambda, minus its bits:
    ``(base[p] - D[p]) / lambdas[p] - bits``. Candidates whose every margin is >= 0 keep every plane's
    BD-rate from rising; among them the largest 6:1:1-weighted margin wins. When none qualifies (e.g. a
    default mode that loses on a plane, against payloads that cost more than they gain), the one whose worst
    plane loses least wins. Ties: the earlier candidate (list cheaper ones first)."""
    best, best_key = b"", None
    weights = np.array([6.0, 1.0, 1.0]) / 8.0
    for d, bits, payload in candidates:
        margins = (base - np.asarray(d, np.float64)) / lambdas - bits
        worst = float(margins.min())
        key = (1, float(weights @ margins)) if worst >= 0 else (0, worst)
        if best_key is None or key > best_key:
            best, best_key = payload, key
    return best


def plane_sse(a: Frame, b: Frame) -> np.ndarray:
    """Squared error of each plane (Y, U, V) between two frames, in samples of their bit depth."""
    return np.array([float(((x.astype(np.float64) - y) ** 2).sum()) for x, y in zip(a.planes, b.planes)])


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
