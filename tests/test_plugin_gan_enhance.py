"""The first-party gan-enhance plugin (plugins/gan-enhance): contract kit, a real clip restored end to
end, payload coding, determinism, tiling, and no torch at import. CPU only, no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("genpost_gan_enhance", reason="pip install -e plugins/gan-enhance")
pytest.importorskip("onnxruntime")

from conftest import (
    base_and_restored_psnr_y,
    encode_first_frames,
    first_frames,
    plugin_context,
)
from genpost_gan_enhance import codec
from genpost_gan_enhance.postprocessor import GanEnhance

from genpost import Context, PayloadError, media, pipeline
from genpost.testing import NetworkContract, PostProcessorContract
from genpost.types import Frame, to_bit_depth

CLIP = Path(__file__).parent / "data" / "carphone_176x144_29.97.y4m"


class TestGanEnhanceContract(PostProcessorContract):
    postprocessor = GanEnhance
    # at full lambda the 176x144 clip rarely pays a ~60-byte record; a small lambda makes the kit see payloads
    options = {"gan-enhance.lambda_scale": "0.05", "gan-enhance.adapt_steps": "20"}  # adaptation on, kept short


class TestGanEnhanceNetwork(NetworkContract):
    postprocessor = GanEnhance
    option_prefix = "gan-enhance"
    options = {"gan-enhance.strength": "1"}  # noqa: RUF012 (the default mode runs the network only when asked)


def _frames(n: int) -> list[Frame]:
    return first_frames(n, CLIP)


def _ctx(frame: Frame, **options) -> Context:
    return plugin_context("gan-enhance", frame, options)


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """carphone, 8 frames, x265 QP 37 through genpost.pipeline.encode with gan-enhance side info."""
    # at the BD-safe lambdas side info must pay on every plane, which the shipped weights do not on carphone's
    # V; a short content adaptation (which does) and a smaller lambda make the encoder send its RD-chosen maps
    options = {"gan-enhance.lambda_scale": "0.05", "gan-enhance.adapt_steps": "60"}
    return encode_first_frames(tmp_path_factory.mktemp("gan"), "gan-enhance", 8, options)


def test_restores_a_real_clip_end_to_end_and_beats_the_base(coded):
    src, mkv, report, tmp = coded
    assert report.frames == 8 and report.records["gan-enhance/1"] >= 1  # the RD choice sent side info
    out = tmp / "restored.y4m"
    rep = pipeline.enhance(mkv, out, media.EncoderSettings(codec="y4m"), ["gan-enhance"])
    assert rep.per_plugin["gan-enhance"].fallbacks == 0
    base, restored, frames = base_and_restored_psnr_y(src, mkv, out)
    assert frames == 8
    assert restored > base + 0.05, (base, restored)


def test_default_mode_without_side_info_improves_luma():
    frame = _frames(1)[0]
    # the clip itself plays the source; a coarse requantisation plays the base
    base = frame.with_planes(*[((p.astype(np.int32) // 12) * 12 + 6).clip(0, 255).astype(np.uint8) for p in frame.planes])
    proc = GanEnhance()
    proc.setup("cpu")
    off = proc.restore(base, None, _ctx(base, strength=0))
    assert off is base
    assert proc.restore(base, None, _ctx(base)) is base  # by default, no side info: left as decoded
    out = proc.restore(base, None, _ctx(base, qp=42, strength=1))
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


def test_rd_choice_never_loses_to_the_base_in_its_own_cost(coded):
    """The encoder compares against 'all blocks off'; what it sends costs no more D + lambda*R than that."""
    src, mkv, _, _ = coded
    with media.InputFile(src) as s, media.InputFile(mkv) as b:
        source, decoded = next(zip(s.frames(), b.frames()))
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


def test_ten_bit_frames_restore_at_their_depth():
    frame = to_bit_depth(_frames(1)[0], 10)
    proc = GanEnhance()
    proc.setup("cpu")
    payload = codec.encode(37, np.array([[0, 1, 2], [3, 1, 1], [0, 0, 3]]))
    out = proc.restore(frame, payload, _ctx(frame))
    assert out.y.dtype == np.uint16 and out.bit_depth == 10 and int(out.y.max()) <= 1023
    out8 = proc.restore(_frames(1)[0], payload, _ctx(_frames(1)[0]))
    # same picture at 8 and 10 bits: the restorations agree to within rounding (input normalised by depth)
    assert np.abs(out.y.astype(np.int32) / 4 - out8.y).mean() < 0.5


def test_torch_bf16_stays_close_to_fp32():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    frame = _frames(1)[0]
    proc = GanEnhance()
    proc.setup("cpu")
    a = proc.restore(frame, None, _ctx(frame, backend="torch", strength=1))
    b = proc.restore(frame, None, _ctx(frame, backend="torch", precision="bf16", strength=1))
    assert proc._engine.precision == "bf16"
    assert np.abs(a.y.astype(np.int32) - b.y).max() <= 3 and np.mean(a.y != b.y) < 0.5
