"""The first-party syntax-diffusion plugin (plugins/syntax-diffusion): contract kits,
a real clip restored end to end, payload coding, the consistency step, determinism,
10-bit, the RD choice. CPU only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "genpost_syntax_diffusion", reason="pip install -e plugins/syntax-diffusion"
)
pytest.importorskip("onnxruntime")

import learned_kit as kit
from conftest import (
    check_adapted_onnx_matches_torch,
    check_adapted_payload,
    check_perfect_frame_untouched,
    check_plane_masks,
    first_frames,
)
from genpost_syntax_diffusion import codec, engine
from genpost_syntax_diffusion.postprocessor import SyntaxDiffusion

from genpost import Context, PayloadError
from genpost.types import Frame

# at full lambda the 176x144 clip rarely pays a record; a small lambda makes the kit (and the RD choice in
# the coded clip) send
SEND = {"syntax-diffusion.lambda_scale": "0.01", "syntax-diffusion.adapt_steps": "20"}
TestSyntaxDiffusionContract, TestSyntaxDiffusionNetwork = kit.contract_kits(
    SyntaxDiffusion, SEND, {"syntax-diffusion.blind": "1"}  # the network kit: the blind mode runs the network
)
_ctx = kit.context_maker("syntax-diffusion")
# carphone, 6 frames, x265 QP 37 ultrafast through genpost.jobs.pipeline.encode with syntax-diffusion side info
coded, proc, pair = kit.plugin_fixtures(SyntaxDiffusion, 6, SEND)


def _sse(source: Frame, out: Frame) -> float:
    planes = zip(source.planes, out.planes, strict=True)
    return float(sum(np.sum((a.astype(np.float64) - c) ** 2) for a, c in planes))


def test_restores_a_real_clip_end_to_end_and_beats_the_base(coded):
    kit.check_restores_end_to_end(coded, "syntax-diffusion", 6, 0.01)


def test_payload_round_trips():
    rng = np.random.default_rng(1)
    for _ in range(200):
        qp = int(rng.integers(64))
        n = codec.K if rng.integers(2) else 0
        values = tuple(int(v) for v in rng.integers(-codec.ZMAX, codec.ZMAX + 1, n))
        strengths = tuple(int(g) for g in rng.integers(0, codec.FULL + 1, 3))
        payload = codec.encode(qp, values, strengths)
        assert codec.decode(payload) == (qp, values, strengths)
    assert codec.encode(30, ()) == bytes([1, 30, 0, 8, 0x88])
    zeros = (0,) * codec.K  # se(0) is a single 1 bit
    assert codec.encode(30, zeros, (4, 2, 0)) == bytes([1, 30, 16, 4, 0x20, 0xFF, 0xFF])
    with pytest.raises(ValueError):
        codec.encode(30, (16,) + (0,) * 15)
    with pytest.raises(ValueError):
        codec.encode(30, (), (8, 9, 8))


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x01", bytes([1, 32, 0, 8]), bytes([2, 32, 0, 8, 0x88]),
     bytes([1, 64, 0, 8, 0x88]), bytes([1, 32, 0, 9, 0x88]), bytes([1, 32, 0, 8, 0x98]),
     bytes([1, 32, 0, 8, 0x8F]), bytes([1, 32, 0, 8, 0x88, 0]),
     bytes([1, 32, 5, 8, 0x88, 0xFF]), bytes([1, 32, 16, 8, 0x88, 0xFF]),
     bytes([1, 32, 16, 8, 0x88, 0xFF, 0xFF, 0x00]),
     bytes([1, 32, 16, 8, 0x88, 0xFF, 0xFE, 0x81]),
     bytes([1, 32, 16, 8, 0x88, 0, 0, 0, 0]),
     bytes([1, 32, 16, 8, 0x88]) + bytes([0x02]) * 20],
)  # fmt: skip
def test_bad_payloads_raise_payload_error(payload, proc):
    with pytest.raises(PayloadError):
        codec.decode(payload)
    frame = first_frames(1)[0]
    with pytest.raises(PayloadError):
        proc.restore(frame, payload, _ctx(frame))


def test_consistency_step_keeps_the_decoded_low_pass(proc, pair):
    _, decoded = pair
    out = proc.restore(decoded, None, _ctx(decoded, blind=1))
    free = proc.restore(decoded, None, _ctx(decoded, consistency=0, blind=1))
    assert not np.array_equal(out.y, free.y)
    for base, restored, unconstrained, period in zip(
        decoded.planes, out.planes, free.planes, (32, 16, 16), strict=True
    ):
        lp_base, lp_out = engine.lowpass(base, period), engine.lowpass(restored, period)
        # exact before rounding to integer samples; rounding leaves a small residue
        assert np.abs(lp_out - lp_base).max() < 0.35
        assert np.abs(lp_out - lp_base).mean() < 0.05
        assert (
            np.abs(lp_out - lp_base).mean()
            < np.abs(engine.lowpass(unconstrained, period) - lp_base).mean()
        )
    x = np.random.default_rng(0).random((40, 56))
    d = np.random.default_rng(1).random((40, 56))
    assert np.allclose(
        engine.lowpass(engine.consistent(x, d, 16), 16),
        engine.lowpass(d, 16),
        atol=1e-10,
    )


def test_strengths_blend_each_plane_towards_the_base(proc, pair):
    _, decoded = pair
    off = proc.restore(decoded, codec.encode(37, (), (0, 0, 0)), _ctx(decoded))
    mixed = proc.restore(decoded, codec.encode(37, (), (4, 0, 8)), _ctx(decoded))
    full = proc.restore(decoded, codec.encode(37, (), (8, 8, 8)), _ctx(decoded))
    assert all(
        np.array_equal(a, b) for a, b in zip(off.planes, decoded.planes, strict=True)
    )
    mid = (decoded.y.astype(np.float64) + full.y) / 2
    assert np.abs(mixed.y - mid).max() <= 1.0 and not np.array_equal(mixed.y, full.y)
    assert np.array_equal(mixed.u, decoded.u) and np.array_equal(mixed.v, full.v)


def test_default_mode_and_syntax_vector_both_restore(proc, pair):
    source, decoded = pair
    z = proc.syntax(source, decoded, 37, _ctx(decoded))
    assert len(z) == codec.K and all(-codec.ZMAX <= v <= codec.ZMAX for v in z)
    guided = proc.restore(decoded, codec.encode(37, z), _ctx(decoded))
    assert proc.restore(decoded, None, _ctx(decoded, qp=None)) is decoded  # no side info: left as decoded
    # the documented blind mode: zero vector, QP 32
    default = proc.restore(decoded, None, _ctx(decoded, qp=None, blind=1))
    base = _sse(source, decoded)
    assert _sse(source, default) < base and _sse(source, guided) < base


def test_deterministic_and_analyze_agrees_with_restore(pair):
    source, decoded = pair
    runs = []
    for _ in range(2):
        p = SyntaxDiffusion()
        p.setup("cpu")
        ctx = _ctx(decoded, lambda_scale=0.01)
        payload = p.analyze(source, decoded, ctx)
        out = p.restore(
            decoded, payload or None, Context(stream=ctx.stream, options=ctx.options)
        )
        runs.append((payload, *(a.tobytes() for a in out.planes)))
    assert runs[0] == runs[1] and runs[0][0]


def test_rd_choice_never_loses_to_sending_nothing(proc, pair):
    source, decoded = pair
    ctx = _ctx(decoded, record_frames=1)
    ctx.record_overhead_bits = 8 * 63
    decoder = Context(stream=ctx.stream, options=ctx.options)  # a decoder: QP unknown
    payload = kit.check_rd_choice_per_plane(proc, source, decoded, ctx, decoder)
    # extending the run in force is free: it wins ties
    ctx.previous_payload = codec.encode(37, (), (6, 8, 8))
    again = proc.analyze(source, decoded, ctx)
    assert again in (ctx.previous_payload, payload, b"")


def test_ten_bit_frames_restore_at_their_depth(proc):
    kit.check_ten_bit_restores_at_its_depth(proc, codec.encode(37, tuple(range(-8, 8))), _ctx)


def test_bad_options_are_clear_errors(proc):
    frame = first_frames(1)[0]
    with pytest.raises(ValueError, match="steps must be an integer in"):
        proc.restore(frame, None, _ctx(frame, steps=5, blind=1))
    with pytest.raises(ValueError, match="consistency must be"):
        proc.restore(frame, None, _ctx(frame, consistency=2, blind=1))


# ---------------------------------------------------------------- per plane, content adaptation


def test_plane_masks_restore_only_their_planes(proc, pair):
    decoded = pair[1]
    check_plane_masks(proc, decoded, codec.encode(37, (), (8, 8, 8)), _ctx(decoded))


def test_a_frame_the_base_codes_perfectly_stays_untouched(proc):
    frame = first_frames(1)[0]
    check_perfect_frame_untouched(proc, frame, _ctx(frame))


def test_an_adapted_payload_restores_only_with_its_update(proc, pair):
    source, decoded = pair
    check_adapted_payload(proc, source, decoded, _ctx(decoded, lambda_scale=0.01), SyntaxDiffusion.weights[1].sha256)


def test_adapted_unet_onnx_matches_torch():
    pytest.importorskip("torch")
    from genpost_syntax_diffusion.postprocessor import SPEC

    check_adapted_onnx_matches_torch(engine.denoiser, SyntaxDiffusion(), SPEC, 15 + codec.K)
