"""The first-party gan-enhance plugin (plugins/gan-enhance): contract kit, a real clip restored end to
end, payload coding, determinism, tiling, and no torch at import. CPU only, no training."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("genpost_gan_enhance", reason="pip install -e plugins/gan-enhance")
pytest.importorskip("onnxruntime")

import learned_kit as kit
from conftest import first_frames as _frames
from conftest import plugin_context
from genpost_gan_enhance import codec
from genpost_gan_enhance.postprocessor import GanEnhance

from genpost import Context, PayloadError

# at full lambda the 176x144 clip rarely pays a ~60-byte record; a small lambda makes the kit see payloads
# (adaptation on, kept short); the network kit: the default mode runs the network only when asked
TestGanEnhanceContract, TestGanEnhanceNetwork = kit.contract_kits(
    GanEnhance, {"gan-enhance.lambda_scale": "0.05", "gan-enhance.adapt_steps": "20"}, {"gan-enhance.strength": "1"}
)
_ctx = kit.context_maker("gan-enhance")
# carphone, 8 frames, x265 QP 37 with gan-enhance side info: at the BD-safe lambdas side info must pay on every
# plane, which the shipped weights do not on carphone's V; a short content adaptation (which does) and a smaller
# lambda make the encoder send its RD-chosen maps
coded, proc, pair = kit.plugin_fixtures(GanEnhance, 8, {"gan-enhance.lambda_scale": "0.05", "gan-enhance.adapt_steps": "60"})


def test_restores_a_real_clip_end_to_end_and_beats_the_base(coded):
    kit.check_restores_end_to_end(coded, "gan-enhance", 8, 0.05)


def test_default_mode_without_side_info_improves_luma():
    frame = _frames(1)[0]
    # the clip itself plays the source; a coarse requantisation plays the base
    base = frame.with_planes(*[((p.astype(np.int32) // 12) * 12 + 6).clip(0, 255).astype(np.uint8) for p in frame.planes])
    proc = GanEnhance()
    proc.setup("cpu")
    off = proc.restore(base, None, _ctx(base, strength=0))
    assert off is base
    assert proc.restore(base, None, _ctx(base)) is base  # by default, no side info: left as decoded
    out = proc.restore(base, None, plugin_context("gan-enhance", base, {"qp": 42, "strength": 1}))  # the option qp
    assert out.y.dtype == np.uint8 and out.y.shape == base.y.shape
    assert not np.array_equal(out.y, base.y)


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 3), (12, 20)])
def test_payload_round_trips(rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    for _ in range(20):
        levels = rng.integers(0, len(codec.LEVELS), (rows, cols)).astype(np.uint8)
        qp = int(rng.integers(0, 64))
        payload = codec.encode(qp, levels)
        got_qp, got = codec.decode(payload, rows, cols)
        assert got_qp == qp and np.array_equal(got, levels)
    assert codec.encode(30, np.full((rows, cols), 2)) == bytes([1, 30, 0, 2])


def test_payload_bits_match_the_rd_rate_model():
    levels = np.array([[0, 0, 1, 1, 3, 2, 2, 0]], np.uint8)
    bits = 2 + sum(codec.change_bits(int(a), int(b)) for a, b in zip(levels[0], levels[0][1:]))
    assert len(codec.encode(32, levels)) == 3 + -(-bits // 8)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x01", bytes([2, 32, 0, 1]), bytes([1, 64, 0, 1]), bytes([1, 32, 0, 4]), bytes([1, 32, 2, 0]),
     bytes([1, 32, 0, 1, 0]), bytes([1, 32, 1]), bytes([1, 32, 1, 0xFF, 0xFF, 0xFF, 0xFF])],
)  # fmt: skip
def test_bad_payloads_raise_payload_error(payload):
    with pytest.raises(PayloadError):
        codec.decode(payload, 3, 3)


def test_map_payload_for_another_frame_size_is_refused():
    payload = codec.encode(32, np.array([[0, 1, 2, 3, 0, 1, 2, 3, 1, 1, 1, 1]]))
    with pytest.raises(PayloadError):
        codec.decode(payload, 3, 3)


def test_rd_choice_never_loses_to_the_base_in_its_own_cost(pair):
    """The encoder compares against 'all blocks off'; what it sends costs no more D + lambda*R than that."""
    source, decoded = pair
    proc = GanEnhance()
    proc.setup("cpu")
    ctx = _ctx(decoded)
    ctx.record_overhead_bits = 8 * 59
    payload = proc.analyze(source, decoded, ctx)
    out = proc.restore(decoded, payload or None, Context(stream=ctx.stream))
    sse = lambda f: sum(np.sum((a.astype(np.float64) - c) ** 2) for a, c in zip(source.planes, f.planes))
    bits = (ctx.record_overhead_bits + 8 * len(payload)) if payload else 0
    off = sse(decoded) + ctx.lagrangian * (ctx.record_overhead_bits + 32)
    assert sse(out) + ctx.lagrangian * bits <= off


def test_ten_bit_frames_restore_at_their_depth(proc):
    kit.check_ten_bit_restores_at_its_depth(proc, codec.encode(37, np.array([[0, 1, 2], [3, 1, 1], [0, 0, 3]])), _ctx)


def test_torch_bf16_stays_close_to_fp32():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    frame = _frames(1)[0]
    proc = GanEnhance()
    proc.setup("cpu")
    a = proc.restore(frame, None, _ctx(frame, backend="torch", strength=1))
    b = proc.restore(frame, None, _ctx(frame, backend="torch", precision="bf16", strength=1))
    assert proc._engine_for(_ctx(frame, backend="torch", precision="bf16")).precision == "bf16"
    assert np.abs(a.y.astype(np.int32) - b.y).max() <= 3 and np.mean(a.y != b.y) < 0.5
