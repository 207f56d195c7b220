"""The first-party rectified-flow plugin (plugins/rectified-flow): contract kit, a real clip restored end to
end, payload coding, determinism under a seed, 10-bit, tiling, backends, and no torch at import. CPU only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("genpost_rectified_flow", reason="pip install -e plugins/rectified-flow")
pytest.importorskip("onnxruntime")

from conftest import (
    base_and_restored_psnr_y,
    encode_first_frames,
    first_frames,
    plugin_context,
    psnr,
)
from genpost_rectified_flow import codec
from genpost_rectified_flow.codec import Settings
from genpost_rectified_flow.postprocessor import RectifiedFlow

from genpost import Context, PayloadError, media, pipeline
from genpost.testing import NetworkContract, PostProcessorContract
from genpost.types import Frame, to_bit_depth

CLIP = Path(__file__).parent / "data" / "carphone_176x144_29.97.y4m"
FAST = {"rectified-flow.search": "fast", "rectified-flow.seeds": "1"}


class TestRectifiedFlowContract(PostProcessorContract):
    postprocessor = RectifiedFlow
    # at full lambda the 176x144 clip rarely pays a ~40-byte record; a small lambda makes the kit see payloads
    options = {"rectified-flow.lambda_scale": "0.02", "rectified-flow.adapt_steps": "20", **FAST}  # noqa: RUF012 (the kit's own ClassVar)


class TestRectifiedFlowNetwork(NetworkContract):
    postprocessor = RectifiedFlow
    option_prefix = "rectified-flow"
    options = {**FAST, "rectified-flow.blind": "1"}  # noqa: RUF012 (the default mode runs the network only when asked)


def _frames(n: int) -> list[Frame]:
    return first_frames(n, CLIP)


def _ctx(frame: Frame, qp: int | None = 37, **options) -> Context:
    return plugin_context("rectified-flow", frame, options, qp)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """carphone, 6 frames, x265 QP 37 ultrafast through genpost.pipeline.encode with rectified-flow side info."""
    # at full lambda a 176x144 frame rarely pays for a record (the default mode runs instead); a smaller
    # lambda makes the encoder send its RD-chosen settings and maps, so the test covers the side-info path
    options = {**FAST, "rectified-flow.lambda_scale": "0.05", "rectified-flow.adapt": "off"}
    return encode_first_frames(tmp_path_factory.mktemp("rf"), "rectified-flow", 6, options)


@pytest.fixture(scope="module")
def proc():
    p = RectifiedFlow()
    p.setup("cpu")
    return p


def test_restores_a_real_clip_end_to_end_and_beats_the_base(coded):
    src, mkv, report, tmp = coded
    assert report.frames == 6 and report.records["rectified-flow/1"] >= 1  # the RD choice sent side info
    out = tmp / "restored.y4m"
    rep = pipeline.enhance(mkv, out, media.EncoderSettings(codec="y4m"), ["rectified-flow"])
    assert rep.per_plugin["rectified-flow"].fallbacks == 0
    base, restored, frames = base_and_restored_psnr_y(src, mkv, out)
    assert frames == 6
    assert restored > base + 0.01, (base, restored)  # a small model: about +0.045 dB here


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


def test_default_mode_without_side_info_improves_luma(coded, proc):
    src, mkv, _, _ = coded
    with media.InputFile(src) as s, media.InputFile(mkv) as b:
        source, base = next(zip(s.frames(), b.frames()))
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


def test_rd_choice_never_loses_to_sending_nothing(coded, proc):
    src, mkv, _, _ = coded
    with media.InputFile(src) as s, media.InputFile(mkv) as b:
        source, decoded = next(zip(s.frames(), b.frames()))
    ctx = _ctx(decoded, search="fast", seeds=1, record_frames=1)
    ctx.record_overhead_bits = 8 * 62
    payload = proc.analyze(source, decoded, ctx)
    sse = lambda f: sum(np.sum((a.astype(np.float64) - c) ** 2) for a, c in zip(source.planes, f.planes))
    nothing = sse(proc.restore(decoded, None, Context(stream=ctx.stream, options=ctx.options)))
    chosen = sse(proc.restore(decoded, payload or None, Context(stream=ctx.stream, options=ctx.options)))
    bits = ctx.record_overhead_bits + 8 * len(payload) if payload else 0
    assert chosen + ctx.lagrangian * bits <= nothing


def test_ten_bit_frames_restore_at_their_depth(proc):
    frame8 = _frames(1)[0]
    frame = to_bit_depth(frame8, 10)
    payload = codec.encode(Settings(37, 2, 1, 0, 0, (3, -2, 1)))
    out = proc.restore(frame, payload, _ctx(frame))
    assert out.y.dtype == np.uint16 and out.bit_depth == 10 and int(out.y.max()) <= 1023
    out8 = proc.restore(frame8, payload, _ctx(frame8))
    # the same picture at 8 and 10 bits: restorations agree to within rounding (inputs normalised by depth)
    assert np.abs(out.y.astype(np.int32) / 4 - out8.y).mean() < 0.5


def test_bad_options_are_clear_errors(proc):
    frame = _frames(1)[0]
    with pytest.raises(ValueError, match="backend must be one of"):
        RectifiedFlow().restore(frame, None, _ctx(frame, backend="tpu", blind=1))
    with pytest.raises(ValueError, match="steps must be an integer in"):
        proc.restore(frame, None, _ctx(frame, steps=5, blind=1))
