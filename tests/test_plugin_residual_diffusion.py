"""The first-party residual-diffusion plugin (plugins/residual-diffusion).

Contract kits, a real clip restored end to end, the ANS-coded latent payload (exact
round trips, bad payloads), the RD choice, determinism under a seed, 10-bit,
latent-aligned tiling, backends and no torch at import. CPU only."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "genpost_residual_diffusion", reason="pip install -e plugins/residual-diffusion"
)
pytest.importorskip("onnxruntime")
pytest.importorskip("constriction")

import learned_kit as kit
from conftest import (
    check_adapted_onnx_matches_torch,
    check_adapted_payload,
    check_perfect_frame_untouched,
    check_plane_masks,
    psnr,
)
from conftest import first_frames as _frames
from genpost_residual_diffusion import codec, engine
from genpost_residual_diffusion.layout import CELL, LATENT, grid
from genpost_residual_diffusion.postprocessor import ResidualDiffusion

from genpost import PayloadError
from genpost.learned.rd import plane_sse
from genpost.types import Frame, to_bit_depth

SEND = {
    "residual-diffusion.lambda_scale": "0.002",  # a 176x144 frame rarely pays a record on every plane at full lambda
    "residual-diffusion.adapt_steps": "20",  # the kit encodes several times: keep adaptation short
}


def sse(a: Frame, b: Frame) -> float:
    return float(plane_sse(a, b).sum())


TestResidualDiffusionContract, TestResidualDiffusionNetwork = kit.contract_kits(
    ResidualDiffusion, SEND, {"residual-diffusion.blind": "1"}  # the network kit: the blind mode runs the network
)
_ctx = kit.context_maker("residual-diffusion")
# carphone, 6 frames, x265 QP 37 ultrafast, residual-diffusion side info
coded, proc, pair = kit.plugin_fixtures(ResidualDiffusion, 6, SEND)


def test_restores_a_real_clip_end_to_end_and_beats_the_base(coded):
    kit.check_restores_end_to_end(coded, "residual-diffusion", 6, 0.05)  # the RD choice sent latents


@pytest.mark.parametrize("rows,cols", [(1, 1), (3, 5), (18, 22)])
def test_payload_round_trips_exactly(rows, cols):
    rng = np.random.default_rng(rows * 100 + cols)
    for _ in range(30):
        spread = float(rng.choice([0.1, 1.0, 4.0, 40.0]))
        q = np.clip(
            np.rint(rng.laplace(0, spread, (LATENT, rows, cols))),
            -codec.MAX_SYMBOL,
            codec.MAX_SYMBOL,
        ).astype(np.int32)
        q[rng.random(LATENT) < 0.3] = 0  # some channels all zero: not coded
        qp, step = int(rng.integers(64)), int(rng.integers(len(codec.STEPS)))
        payload = codec.encode(qp, step, q)
        assert (len(payload) - codec.HEADER) % 4 == 0 and (
            len(payload) > codec.HEADER
        ) == bool(q.any())
        back = codec.decode(payload, rows, cols)
        assert back[:2] == (qp, step) and np.array_equal(back[2], q)


def test_entropy_coding_is_compact():
    rng = np.random.default_rng(0)
    q = np.clip(np.rint(rng.laplace(0, 0.5, (LATENT, 90, 160))), -31, 31).astype(
        np.int32
    )  # a 720p latent
    bits = 8 * (len(codec.encode(37, 3, q)) - codec.HEADER)
    p0 = np.mean(q == 0)
    assert bits < 1.1 * q.size * (
        -p0 * np.log2(p0) - (1 - p0) * np.log2((1 - p0) / 2) + 1.2 * (1 - p0)
    )


def _valid() -> bytes:
    q = np.zeros((LATENT, 3, 3), np.int32)
    q[0, 1, 1], q[2, 0, 2] = 3, -1
    return codec.encode(37, 2, q)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: b"",
        lambda p: p[:3],
        lambda p: bytes([2]) + p[1:],
        lambda p: p[:1] + bytes([64]) + p[2:],
        lambda p: p[:2] + bytes([len(codec.STEPS)]) + p[3:],
        lambda p: p[:3] + bytes([70]) + p[4:],
        lambda p: p[:-1],
        lambda p: p[:-4],
        lambda p: p + bytes(4),
        lambda p: p[: codec.HEADER],
        lambda p: bytes([1, 37, 0, 0, 0, 0, 0]) + bytes([1, 0, 0, 0]),
        lambda p: p[:3] + bytes([4]) + p[4:],
        lambda p: p[:5] + bytes([70]) + p[6:],
    ],
)  # fmt: skip
def test_bad_payloads_raise_payload_error(mutate, proc):
    payload = mutate(_valid())
    with pytest.raises(PayloadError):
        codec.decode(payload, 3, 3)
    frame = _frames(1)[0]
    with pytest.raises(
        PayloadError
    ):  # and through restore, on a frame of another latent grid
        proc.restore(frame, payload, _ctx(frame))


def test_a_latent_for_another_frame_size_is_refused(proc):
    frame = _frames(1)[0]
    with pytest.raises(PayloadError):
        proc.restore(
            frame, _valid(), _ctx(frame)
        )  # coded for 3 x 3 cells; carphone has 18 x 22


def test_rd_choice_never_loses_to_sending_nothing(pair, proc):
    source, decoded = pair
    ctx = _ctx(decoded)
    ctx.record_overhead_bits = 8 * 66
    kit.check_rd_choice_per_plane(proc, source, decoded, ctx, _ctx(decoded))
    small = _ctx(decoded, lambda_scale=0.002)
    assert proc.analyze(source, decoded, small), (
        "a cheap lambda must make the latent pay"
    )


def test_default_mode_without_side_info_improves_luma(pair, proc):
    source, base = pair
    assert proc.restore(base, None, _ctx(base, qp=None)) is base  # by default, no side info: left as decoded
    out = proc.restore(base, None, _ctx(base, qp=None, blind=1))  # the blind mode: latent absent, QP 32, one step
    assert out.y.dtype == np.uint8 and out.y.shape == base.y.shape
    assert psnr(source.y, out.y, 255) > psnr(source.y, base.y, 255)


def test_deterministic_under_a_seed_and_the_seed_matters_only_for_ddim(pair, proc):
    source, decoded = pair
    payload = proc.analyze(source, decoded, _ctx(decoded, lambda_scale=0.002))
    fresh = ResidualDiffusion()
    fresh.setup("cpu")
    assert fresh.analyze(source, decoded, _ctx(decoded, lambda_scale=0.002)) == payload
    a = proc.restore(decoded, payload, _ctx(decoded, steps=4, seed=5))
    b = fresh.restore(decoded, payload, _ctx(decoded, steps=4, seed=5))
    c = fresh.restore(decoded, payload, _ctx(decoded, steps=4, seed=6))
    assert all(
        np.array_equal(x, y) for x, y in zip(a.planes, b.planes, strict=True)
    )  # bit-exact on repeat
    assert not np.array_equal(a.y, c.y)
    m1, m2 = (
        proc.restore(decoded, payload, _ctx(decoded, seed=1)),
        fresh.restore(decoded, payload, _ctx(decoded, seed=2)),
    )
    assert all(
        np.array_equal(x, y) for x, y in zip(m1.planes, m2.planes, strict=True)
    )  # one-step mean: no noise


def test_ten_bit_frames_restore_at_their_depth(pair, proc):
    source8, frame8 = pair
    payload = proc.analyze(source8, frame8, _ctx(frame8, lambda_scale=0.002))
    frame = to_bit_depth(frame8, 10)
    out = proc.restore(frame, payload, _ctx(frame))
    assert out.y.dtype == np.uint16 and out.bit_depth == 10 and int(out.y.max()) <= 1023
    out8 = proc.restore(frame8, payload, _ctx(frame8))
    assert (
        np.abs(out.y.astype(np.int32) / 4 - out8.y).mean() < 0.5
    )  # inputs normalised by depth


def test_tiles_sit_on_the_latent_grid():
    for n in (engine.DENOISER_TILE, engine.DENOISER_HALO):
        assert (
            n % CELL == 0
        )  # chroma samples; a latent cell is CELL chroma = 8 luma samples
    assert grid(72, 88) == (18, 22) and grid(73, 89) == (19, 23)


def test_bad_options_are_clear_errors(proc):
    frame = _frames(1)[0]
    with pytest.raises(ValueError, match="backend must be one of"):
        ResidualDiffusion().restore(frame, None, _ctx(frame, backend="tpu", blind=1))
    with pytest.raises(ValueError, match="steps must be an integer in"):
        proc.restore(frame, None, _ctx(frame, steps=9, blind=1))


# ---------------------------------------------------------------- per plane, content adaptation


def test_plane_masks_restore_only_their_planes(pair, proc):
    decoded = pair[1]
    body = codec.encode(37, 0, np.zeros((LATENT, *grid(*decoded.u.shape)), np.int32))
    check_plane_masks(proc, decoded, body, _ctx(decoded))


def test_a_frame_the_base_codes_perfectly_stays_untouched(proc):
    frame = _frames(1)[0]
    check_perfect_frame_untouched(proc, frame, _ctx(frame))


def test_an_adapted_payload_restores_only_with_its_update(pair, proc):
    source, decoded = pair
    check_adapted_payload(proc, source, decoded, _ctx(decoded), ResidualDiffusion.kit.adapted_sha256)


def test_adapt_returns_a_valid_update_or_none(pair, proc):
    import dataclasses

    source, decoded = pair
    ctx = dataclasses.replace(_ctx(decoded, adapt="small", adapt_steps=20, lambda_scale=0.002), period_frames=6)
    update = proc.adapt([(source, decoded)], ctx)
    if update:  # then frames restore with it
        restored = proc.restore(decoded, proc.analyze(source, decoded, dataclasses.replace(ctx, update=update)), dataclasses.replace(ctx, update=update))
        assert restored.y.shape == decoded.y.shape
    assert proc.adapt([(source, decoded)], _ctx(decoded, adapt="off")) == b""


def test_adapted_denoiser_onnx_matches_torch():
    pytest.importorskip("torch")
    from genpost_residual_diffusion.layout import DEC_IN
    from genpost_residual_diffusion.postprocessor import SPEC

    check_adapted_onnx_matches_torch(engine.denoiser, ResidualDiffusion(), SPEC, DEC_IN)
