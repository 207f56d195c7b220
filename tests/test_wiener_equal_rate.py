"""wiener keeps to the per-plane rule (``genpost.rdcost``): a record is sent only where every plane's SSE
gain pays for all of its bits at that plane's own lambda, so no plane's BD-rate rises (issue 29, item 2:
on VTM streams chroma gains that paid at HM's lambda raised luma's BD-rate by 1.2 %)."""

from __future__ import annotations

import numpy as np
import pytest
from test_wiener import N_FRAMES, Y4M, ctx_for, read_y4m, x265

from genpost import Frame
from genpost.builtins.wiener import WienerFilter, frame_payloads, restore_planes
from genpost.learned import rd
from genpost.rdcost import margins, pays, pick, plane_lambdas

BASE_BITS = 20_000.0  # a generous base (bits per frame): chroma's lambdas are small, luma's is not


def _sse(a, b) -> np.ndarray:
    return np.array([float(np.sum((x.astype(np.int64) - y) ** 2)) for x, y in zip(a, b)])


@pytest.fixture(scope="module")
def chroma_only():
    """Real carphone frames through x265 QP 37 whose luma is the source's (as if coded losslessly): the only
    gain left to wiener is chroma's, and luma gains nothing for the bits it would pay."""
    src = read_y4m(Y4M, N_FRAMES)
    return [(Frame(*s, index=i), Frame(s[0], d[1], d[2], index=i)) for i, (s, d) in enumerate(zip(src, x265(src, 37)))]


def test_rd_reexports_the_shared_rule():
    assert rd.pick is pick and rd.plane_lambdas is plane_lambdas


def test_margins_and_pays():
    base, lam = np.array([100.0, 10.0, 10.0]), np.array([10.0, 1.0, 1.0])
    assert margins([50.0, 5.0, 5.0], 5, base, lam).tolist() == [0.0, 0.0, 0.0]
    assert pays([50.0, 5.0, 5.0], 5, base, lam)
    # the chroma planes pay many times over, luma does not: not sent
    assert not pays([90.0, 0.0, 0.0], 5, base, lam)
    assert pick([(np.array([90.0, 0.0, 0.0]), 5.0, b"x")], base, lam) == b"x"  # nothing else offered
    assert pick([(base, 0.0, b""), (np.array([90.0, 0.0, 0.0]), 5.0, b"x")], base, lam) == b""


def test_a_chroma_gain_that_does_not_pay_on_luma_is_not_sent(chroma_only):
    """A frame payload whose chroma gains pay at chroma's lambda, and whose summed SSE pays at HM's lambda
    (the old rule), but whose luma gain does not pay for its bits at luma's lambda: nothing is sent."""
    src, dec = chroma_only[1]
    ctx = ctx_for(dec, qp=37, lambda_scale="1")
    ctx.base_bits = BASE_BITS
    off = _sse(dec.planes, src.planes)
    lambdas = plane_lambdas(off, BASE_BITS, ctx.lagrangian)
    lam = ctx.lagrangian
    sent_before = False
    for sse, payload in frame_payloads(src, dec, lam / 8):
        bits = 8 * len(payload)
        m = margins(sse, bits, off, lambdas)
        assert m[1] >= 0 and m[2] >= 0  # chroma pays for every bit at chroma's lambda
        assert m[0] < 0  # luma does not
        sent_before |= sum(sse) + lam / 8 * bits < off.sum()  # the old rule: J = SSE (Y+U+V) + lambda * bits
    assert sent_before
    assert WienerFilter().analyze(src, dec, ctx) == b""


def test_a_period_set_that_does_not_pay_on_luma_is_not_sent(chroma_only):
    dec = chroma_only[0][1]
    ctx = ctx_for(dec, qp=37)
    ctx.period_frames, ctx.base_bits = 64, BASE_BITS
    assert WienerFilter().adapt(chroma_only, ctx) == b""


@pytest.mark.parametrize("qp", [27, 37])
def test_what_is_sent_pays_on_every_plane(qp):
    """On a real x265 frame, what analyze sends (nothing in force: its bits charged over the
    ``record_frames`` it is expected to serve, default 8) gains on every plane at least what those bits cost
    at that plane's lambda; a base so small that no plane can pay gets nothing."""
    src = read_y4m(Y4M, 2)
    dec = x265(src, qp)
    s, d = Frame(*src[1], index=1), Frame(*dec[1], index=1)
    off = _sse(d.planes, s.planes)
    for base_bits in (4e3, 1e5):
        ctx = ctx_for(d, qp=qp)
        ctx.base_bits, ctx.record_overhead_bits = base_bits, 8 * 33
        payload = WienerFilter().analyze(s, d, ctx)
        assert payload  # carphone's filters pay here
        got = _sse(restore_planes(d.planes, payload, 8), s.planes)
        assert pays(got, (8 * len(payload) + 8 * 33) / 8, off, plane_lambdas(off, base_bits, ctx.lagrangian))
    ctx = ctx_for(d, qp=qp)
    ctx.base_bits, ctx.record_overhead_bits = 50.0, 8 * 33
    assert WienerFilter().analyze(s, d, ctx) == b""
