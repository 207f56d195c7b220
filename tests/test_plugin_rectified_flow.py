"""The first-party rectified-flow plugin (plugins/rectified-flow): contract kit, a real clip restored end to
end, payload coding, determinism under a seed, 10-bit, tiling, backends, and no torch at import. CPU only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("genpost_rectified_flow", reason="pip install -e plugins/rectified-flow")
pytest.importorskip("onnxruntime")

import learned_kit as kit
from conftest import first_frames as _frames
from conftest import psnr
from genpost_rectified_flow import codec
from genpost_rectified_flow.codec import Settings
from genpost_rectified_flow.postprocessor import RectifiedFlow

from genpost import Context, PayloadError

FAST = {"rectified-flow.search": "fast", "rectified-flow.seeds": "1"}

# at full lambda the 176x144 clip rarely pays a ~40-byte record; a small lambda makes the kit see payloads;
# the network kit: the default mode runs the network only when asked
TestRectifiedFlowContract, TestRectifiedFlowNetwork = kit.contract_kits(
    RectifiedFlow, {"rectified-flow.lambda_scale": "0.02", "rectified-flow.adapt_steps": "20", **FAST},
    {**FAST, "rectified-flow.blind": "1"},
)  # fmt: skip
_ctx = kit.context_maker("rectified-flow")
# carphone, 6 frames, x265 QP 37 with rectified-flow side info: at full lambda a 176x144 frame rarely pays for a
# record (the default mode runs instead); a smaller lambda makes the encoder send its RD-chosen settings and
# maps, so the test covers the side-info path
coded, proc, pair = kit.plugin_fixtures(RectifiedFlow, 6, {**FAST, "rectified-flow.lambda_scale": "0.05", "rectified-flow.adapt": "off"})


def test_restores_a_real_clip_end_to_end_and_beats_the_base(coded):
    kit.check_restores_end_to_end(coded, "rectified-flow", 6, 0.01)  # a small model: about +0.045 dB here


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 3), (12, 20)])
def test_payload_round_trips(rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    for _ in range(100):
        sigma = int(rng.integers(4))
        guidance = tuple(int(g) for g in rng.integers(-128, 128, 3)) if rng.integers(2) else None
        blocks = tuple(bool(b) for b in rng.integers(0, 2, rows * cols)) if rng.integers(2) else None
        s = Settings(int(rng.integers(64)), int(rng.integers(1, 5)), int(rng.integers(4)), sigma,
                     int(rng.integers(256)) if sigma else 0, guidance, blocks)  # fmt: skip
        payload = codec.encode(s)
        assert len(payload) == 3 + (sigma > 0) + 3 * (guidance is not None) + (-(-rows * cols // 8) if blocks else 0)
        assert codec.decode(payload, rows, cols) == s
    assert codec.encode(Settings(30, 1, 0, 0)) == bytes([1, 30, 0])


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x01", bytes([2, 32, 0]), bytes([1, 64, 0]), bytes([1, 32, 0, 0]), bytes([1, 32, 4]),
     bytes([1, 32, 4, 7, 0]), bytes([1, 32, 2, 1, 2]), bytes([1, 32, 6, 1, 2, 3]), bytes([1, 32, 1]),
     bytes([1, 32, 1, 0xFF]), bytes([1, 32, 1, 0xFF, 0x80, 0]), bytes([1, 32, 1, 0xFF, 0x40])],
)  # fmt: skip
def test_bad_payloads_raise_payload_error(payload):
    with pytest.raises(PayloadError):
        codec.decode(payload, 3, 3)  # 9 blocks: a map is 2 bytes, the last 7 bits zero


def test_block_map_keeps_the_base_where_off(proc):
    frame = _frames(1)[0]  # 176x144: 3 x 3 blocks of 64x64 (edge blocks cut)
    on = proc.restore(frame, codec.encode(Settings(37, 1)), _ctx(frame))
    mixed = proc.restore(frame, codec.encode(Settings(37, 1, blocks=(True, *(False,) * 7, True))), _ctx(frame))
    off = proc.restore(frame, codec.encode(Settings(37, 1, blocks=(False,) * 9)), _ctx(frame))
    assert all(np.array_equal(a, b) for a, b in zip(off.planes, frame.planes))
    assert np.array_equal(mixed.y[:64, :64], on.y[:64, :64]) and np.array_equal(mixed.y[:64, 64:], frame.y[:64, 64:])
    assert np.array_equal(mixed.u[64:, 64:], on.u[64:, 64:]) and np.array_equal(mixed.v[:32, 32:64], frame.v[:32, 32:64])
    assert not np.array_equal(on.y[:64, 64:], frame.y[:64, 64:])


def test_default_mode_without_side_info_improves_luma(pair, proc):
    source, base = pair
    assert proc.restore(base, None, _ctx(base, qp=None)) is base  # by default, no side info: left as decoded
    out = proc.restore(base, None, _ctx(base, qp=None, blind=1))  # documented defaults: 1 step, no noise, QP 32
    assert out.y.dtype == np.uint8 and out.y.shape == base.y.shape
    assert psnr(source.y, out.y, 255) > psnr(source.y, base.y, 255)


def test_seeded_noise_is_deterministic_and_the_seed_matters(proc):
    frame = _frames(1)[0]
    a = proc.restore(frame, codec.encode(Settings(37, 2, 0, 3, 5)), _ctx(frame))
    fresh = RectifiedFlow()
    fresh.setup("cpu")
    b = fresh.restore(frame, codec.encode(Settings(37, 2, 0, 3, 5)), _ctx(frame))
    c = fresh.restore(frame, codec.encode(Settings(37, 2, 0, 3, 6)), _ctx(frame))
    assert all(np.array_equal(x, y) for x, y in zip(a.planes, b.planes))  # bit-exact on repeat
    assert not np.array_equal(a.y, c.y)


def test_the_noise_is_the_same_field_in_every_frame(proc):
    """Temporally stable sampling: a still scene restores to the same picture in every frame (noise drawn
    anew per frame would flicker)."""
    frame = _frames(1)[0]
    payload = codec.encode(Settings(37, 2, 0, 3, 5))
    first = proc.restore(frame, payload, _ctx(frame))
    later = proc.restore(frame.replace(index=17), payload, _ctx(frame))
    assert all(np.array_equal(x, y) for x, y in zip(first.planes, later.planes))


def test_rd_choice_never_loses_to_sending_nothing(pair, proc):
    source, decoded = pair
    ctx = _ctx(decoded, search="fast", seeds=1, record_frames=1)
    ctx.record_overhead_bits = 8 * 62
    payload = proc.analyze(source, decoded, ctx)
    sse = lambda f: sum(np.sum((a.astype(np.float64) - c) ** 2) for a, c in zip(source.planes, f.planes))
    nothing = sse(proc.restore(decoded, None, Context(stream=ctx.stream, options=ctx.options)))
    chosen = sse(proc.restore(decoded, payload or None, Context(stream=ctx.stream, options=ctx.options)))
    bits = ctx.record_overhead_bits + 8 * len(payload) if payload else 0
    assert chosen + ctx.lagrangian * bits <= nothing


def test_ten_bit_frames_restore_at_their_depth(proc):
    kit.check_ten_bit_restores_at_its_depth(proc, codec.encode(Settings(37, 2, 1, 0, 0, (3, -2, 1))), _ctx)


def test_bad_options_are_clear_errors(proc):
    frame = _frames(1)[0]
    with pytest.raises(ValueError, match="backend must be one of"):
        RectifiedFlow().restore(frame, None, _ctx(frame, backend="tpu", blind=1))
    with pytest.raises(ValueError, match="steps must be an integer in"):
        proc.restore(frame, None, _ctx(frame, steps=5, blind=1))
