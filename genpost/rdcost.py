"""Side info that never raises a plane's BD-rate: each plane's lambda and the per-plane RD choice.

Shared by every plugin that sends side info (the built-in ``wiener``, the learned plugins through
``genpost.learned.rd``); numpy only, so a plugin that imports it stays light. The rule: a candidate is
sent only where, for every plane, that plane's SSE gain pays for ALL of its bits at that plane's own
lambda (``plane_lambdas``); ``pick`` chooses by it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .types import Frame

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


def plane_sse(a: Frame, b: Frame) -> np.ndarray:
    """Squared error of each plane (Y, U, V) between two frames, in samples of their bit depth."""
    return np.array([float(((x.astype(np.float64) - y) ** 2).sum()) for x, y in zip(a.planes, b.planes)])


WEIGHTS = np.array([6.0, 1.0, 1.0]) / 8.0  # Y, U, V: how ``pick`` ranks candidates that keep to the rule


def margins(d, bits: float, base, lambdas: np.ndarray) -> np.ndarray:
    """Per plane, what a candidate of per-plane distortion ``d`` and ``bits`` gains over ``base`` in bits at
    that plane's lambda, minus all its bits: ``(base[p] - d[p]) / lambdas[p] - bits``. It keeps every
    plane's BD-rate from rising where every margin is >= 0 (``pays``)."""
    return (np.asarray(base, np.float64) - np.asarray(d, np.float64)) / np.asarray(lambdas, np.float64) - float(bits)


def pays(d, bits: float, base, lambdas: np.ndarray) -> bool:
    """True where every plane's gain pays for all ``bits`` at that plane's lambda (``margins`` >= 0)."""
    return bool(margins(d, bits, base, lambdas).min() >= 0)


def pick(candidates: Sequence[tuple[np.ndarray, float, bytes]], base: np.ndarray, lambdas: np.ndarray) -> bytes:
    """The payload to send among (per-plane D (3,), bits, payload) candidates, "never worse per plane" first
    (``best``); b"" when there is none."""
    if not candidates:
        return b""
    return candidates[best([(d, bits) for d, bits, _ in candidates], base, lambdas)][2]


def best(candidates: Sequence[tuple[np.ndarray, float]], base: np.ndarray, lambdas: np.ndarray) -> int:
    """The index of the best of (per-plane D (3,), bits) candidates, "never worse per plane" first.

    A candidate's margin on plane p is what it gains there, in bits at that plane's lambda, minus its bits:
    ``(base[p] - D[p]) / lambdas[p] - bits``. Candidates whose every margin is >= 0 keep every plane's
    BD-rate from rising; among them the largest 6:1:1-weighted margin wins. When none qualifies (e.g. a
    default mode that loses on a plane, against payloads that cost more than they gain), the one whose worst
    plane loses least wins. Ties: the earlier candidate (list cheaper ones first)."""
    chosen, chosen_key = 0, None
    for i, (d, bits) in enumerate(candidates):
        m = margins(d, bits, base, lambdas)
        worst = float(m.min())
        key = (1, float(WEIGHTS @ m)) if worst >= 0 else (0, worst)
        if chosen_key is None or key > chosen_key:
            chosen, chosen_key = i, key
    return chosen
