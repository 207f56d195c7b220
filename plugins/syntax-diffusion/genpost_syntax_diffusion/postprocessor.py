"""``syntax-diffusion``: a small denoiser (the shared trunk's shape) restores the decoded frame in 1..4
deterministic steps, its features modulated (FiLM) by a compact per-frame syntax vector (16 integers) that a small
extractor computes from the source and its reconstruction at the encoder and sends as side info, with the
QP the encoder knew. A consistency step then puts the decoded frame's low frequencies back. The encoder
chooses by D + lambda * R between nothing, the payload in force, QP only and QP + vector; without side
info a documented default mode runs (zero vector, trained for with vector dropout).

Never worse than the base, per plane: every payload carries per-plane strengths (0 keeps the plane as
decoded), and the default mode (no payload) is a candidate only where it loses on no plane. Content
adaptation (``genpost.learned``): per period the encoder may tune the denoiser's conv biases, per-channel
multipliers, per-plane output gains and (mode ``full``) its output conv on the content, for the one-step
QP-only mode, and send the update once; every frame of the period then names it (``framing`` prefix)."""

from __future__ import annotations

import dataclasses

import numpy as np

from genpost import Context, Frame
from genpost import options as opt
from genpost.learned import framing
from genpost.learned.adapt import AdaptSpec
from genpost.learned.adaptive import DECLARED as ADAPT_OPTIONS
from genpost.learned.blocks import perceptual_weight, plane_distortion, texture_loss
from genpost.learned.modeling import BACKENDS, pack, to_samples, unpack
from genpost.learned.plugin import Kit, LearnedPostProcessor, base_qp, frame_key, shipped_weights, update_key

from . import codec, engine

WHO = "syntax-diffusion"
OPTIONS = (
    opt.integer("steps", "1", 1, 4, "sampler steps (decoder and encoder alike)"),
    opt.integer("qp", "32", 0, 63, "the QP assumed when neither the payload nor the job knows it (blind mode)"),
    opt.integer("blind", "0", 0, 1,
                "decoder: without side info run the blind default mode (1), or leave the frame as decoded (0)"),
    opt.number("consistency", "32", 0, 4096, "luma period (samples, 0 or >= 4) below which the decoded low-pass is kept; 0 = off"),
    opt.choice("backend", "onnx", BACKENDS, "inference runtime (falls back to the other when missing)"),
    opt.number("lambda_scale", "1.0", 0.0, 1e6, "encoder: multiplier on the planes' BD-safe lambdas"),
    opt.number("record_frames", "4", 1.0, 1e4, "encoder: a new payload is charged its bits / this"),
    *ADAPT_OPTIONS,  # encoder: content adaptation per period (genpost.learned.adaptive)
)
DEFAULTS = opt.defaults(OPTIONS)
# the denoiser's convs in forward order (the FiLM MLP is not adapted: it is linear, not a conv); the output
# conv's 6 channels: 4 luma phases, U, V (its output is added to the decode, so gain 0 keeps the decode)
SPEC = AdaptSpec(convs=("head", *(f"body.{i}" for i in range(5)), "tail"), out_planes=(0, 0, 0, 0, 1, 2))
KIT = Kit(WHO, OPTIONS, shipped_weights(__file__), engine.denoiser, SPEC)
_number = KIT.read


STRENGTHS = (0, 2, 4, 6, 8)  # eighths tried by analyze, per plane


def _blend_plane(decoded: np.ndarray, restored: np.ndarray, strength: int) -> np.ndarray:
    if strength == codec.FULL:
        return restored
    if strength == 0:
        return decoded.copy()
    return np.rint(decoded + strength / codec.FULL * (restored.astype(np.float64) - decoded)).astype(decoded.dtype)


def _blend(decoded: Frame, restored: Frame, strengths: tuple[int, int, int]) -> Frame:
    """Per plane decoded + strength / 8 * (restored - decoded), rounded (keeps the decoded low-pass too)."""
    if all(g == codec.FULL for g in strengths):
        return restored
    return decoded.with_planes(*(_blend_plane(d, r, g) for d, r, g in zip(decoded.planes, restored.planes, strengths, strict=True)))


def _plane_sse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum((a.astype(np.float64) - b) ** 2))


def restored_frame(net, frame: Frame, packed: np.ndarray, z: tuple[int, ...] | None, steps: int, period: float) -> Frame:
    """The network's restoration of ``frame`` from its packed decode + QP plane (7, h, w), with the
    low-frequency consistency step: what the decoder runs, and what adaptation measures."""
    top = frame.max_value
    x = engine.sample(net, packed, z, steps)
    planes = []
    for p, base, per in zip(unpack(x, frame.height, frame.width), frame.planes, (period, period / 2, period / 2), strict=True):
        if period:
            p = engine.consistent(p, base / top, per)
        planes.append(to_samples(p, top, frame.dtype))
    return frame.with_planes(*planes)


class SyntaxDiffusion(LearnedPostProcessor):
    name = WHO
    version = "2.0.0"  # 2.0: the shared trunk's shape, trained on the genpost corpus (docs/training.md)
    side_info = "syntax-diffusion/1"
    description = "syntax-guided denoiser (79k params, 14.2 kMAC/px per step), FiLM by a 16-value RD-chosen syntax vector"
    kit = KIT
    restoring_options = {"blind": "1"}  # genpost bench: frames without side info run the blind mode (the default 0 leaves them as decoded)

    # ---------------------------------------------------------------- decoder

    def _options(self, ctx: Context) -> tuple[int, float]:
        steps = _number(ctx, "steps")
        period = _number(ctx, "consistency")
        if period and period < 4:
            raise ValueError(f"{WHO}.consistency must be 0 or at least 4, not {period}")
        return steps, period

    def _apply(self, frame: Frame, qp: int, z: tuple[int, ...] | None, ctx: Context) -> Frame:
        """The restored frame for a conditioning QP and syntax vector (None = default mode), cached per frame."""
        steps, period = self._options(ctx)
        net = self.adapted(ctx)

        def run() -> Frame:
            return restored_frame(net, frame, pack(frame.y, frame.u, frame.v, frame.max_value, qp), z, steps, period)

        return self._memo.get(frame_key(frame), (net.backend, qp, z, steps, period, update_key(ctx)), run)

    def _default_qp(self, ctx: Context) -> int:
        return base_qp(ctx, _number(ctx, "qp"))

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if payload is None:  # no side info: as decoded, or the blind default mode
            if not _number(ctx, "blind"):
                return decoded
            return self._apply(decoded, self._default_qp(ctx), None, ctx)
        body, planes, tag = framing.unwrap(bytes(payload))
        qp, values, strengths = codec.decode(body)
        strengths = tuple(g if planes >> p & 1 else 0 for p, g in enumerate(strengths))
        if not any(strengths):
            return decoded
        return _blend(decoded, self._apply(decoded, qp, values or None, framing.decoder_context(ctx, tag)), strengths)

    # ---------------------------------------------------------------- encoder

    def syntax(self, source: Frame, decoded: Frame, qp: int, ctx: Context) -> tuple[int, ...]:
        """The frame's quantised syntax vector (the extractor runs once per frame, on the whole frame)."""
        net = self.network(engine.extractor, str(_number(ctx, "backend")))
        top = decoded.max_value
        return engine.syntax_vector(net, pack(source.y, source.u, source.v, top), pack(decoded.y, decoded.u, decoded.v, top, qp))

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """The payload ``genpost.learned.rd.pick`` prefers (no plane's BD-rate rises, then the largest gain in
        bits) among: nothing (0 bits: the frame stays as decoded, or the blind mode where it loses on no
        plane; never while an update is in force), the payload in force (0 bits), and QP only or QP + the
        frame's syntax vector, each with the per-plane strengths (STRENGTHS, 0 = keep the base plane) that
        minimise each plane's SSE. D = SSE per plane at the stream's bit depth; R of a new payload =
        (record overhead + 8 * bytes) / record_frames."""
        from genpost.learned import rd

        spread = _number(ctx, "record_frames")
        qp = self._default_qp(ctx)
        tag = framing.update_tag(ctx.update) if ctx.update is not None else None
        mu = perceptual_weight(ctx)  # 0 under --target fidelity: D is SSE per plane
        base = plane_distortion(source, decoded, mu)
        lambdas = rd.plane_lambdas(base, ctx.base_bits, ctx.lagrangian) * _number(ctx, "lambda_scale")
        reuse = framing.reuse_candidates(ctx, tag, base, lambda p: plane_distortion(source, self.restore(decoded, p, ctx), mu))
        candidates = [(d, 0.0, p) for d, p in reuse]
        # send nothing: what a decoder runs without side info; it does not know the base QP (enhance gives
        # ctx.qp = None or the *output* QP), so a blind mode assumes the `qp` option
        default = plane_distortion(source, self.restore(decoded, None, dataclasses.replace(ctx, qp=None)), mu)
        if framing.default_allowed(default, base, tag):
            candidates.append((default, 0.0, b""))
        for values in ((), self.syntax(source, decoded, qp, ctx)):
            restored = self._apply(decoded, qp, values or None, ctx)
            d, strengths = [], []
            for src, plane, out in zip(source.planes, decoded.planes, restored.planes, strict=True):
                best = min((_plane_sse(src, _blend_plane(plane, out, g)), g) for g in STRENGTHS)  # SSE is per plane
                d.append(best[0])
                strengths.append(best[1])
            if mu:  # the perceptual term of the luma the strengths chose
                d[0] += mu * texture_loss(source.y, _blend_plane(decoded.y, restored.y, strengths[0]))
            payload = framing.wrap(codec.encode(qp, values, tuple(strengths)), framing.ALL_PLANES, tag)
            bits = (ctx.record_overhead_bits + 8 * len(payload)) / spread
            candidates.append((np.array(d, np.float64), float(bits), payload))
        return rd.pick(candidates, base, lambdas)

    def adapt(self, pairs, ctx: Context) -> bytes:
        """The period's weight update by RD (``genpost.learned``): tuned for the QP-only payload's mode (no
        syntax vector) on the sampled pairs at the base's QP, for the first sampler step, and measured with
        the decoder's inference (all steps and the consistency step)."""
        from .engine import make_denoiser

        qp = self._default_qp(ctx)
        lam = ctx.lagrangian * _number(ctx, "lambda_scale")
        generic = self.adapted(Context(stream=ctx.stream, options=ctx.options))
        steps, period = self._options(ctx)

        def forward(net, x):  # step 0 from the decode: x_t = decode, t = 0, zero vector, flag 0
            import torch

            n, _, h, w = x.shape
            return net(torch.cat([x[:, :6], x, torch.zeros(n, codec.K + 2, h, w)], 1)) - x[:, :6]

        return self._adaptive.choose(
            generic, pairs, ctx, qp, lam, make_denoiser, forward,
            lambda net, dec, x: restored_frame(net, dec, x, None, steps, period),
        )  # fmt: skip
