"""``residual-diffusion``: the encoder sends a tiny learned latent of the coding residual (4 channels on the
1/8 luma grid, quantised with a per-frame step chosen by D + lambda * R, ANS coded); the decoder's small
conditional diffusion model generates the residual from the decoded frame and that latent (one-step
posterior mean by default, or DDIM in up to 8 seeded steps) and adds it. Without side info it runs as a
plain conditional one-step denoiser (latent absent).

Never worse than the base, per plane: every payload may leave planes as decoded (``genpost.learned.framing``),
and the default mode (no payload) is a candidate only where it loses on no plane. Content adaptation
(``genpost.learned``): per period the encoder may tune the denoiser's biases, per-channel multipliers,
per-plane output gains and (mode ``full``) its output layer on the content, for the latent-free one-step
mode, and send the update once; every frame of the period then names it."""

from __future__ import annotations

import numpy as np

from genpost import Context, Frame
from genpost import options as opt
from genpost.learned import framing
from genpost.learned.adapt import AdaptSpec
from genpost.learned.adaptive import DECLARED as ADAPT_OPTIONS
from genpost.learned.blocks import perceptual_weight, plane_distortion
from genpost.learned.modeling import BACKENDS, pack, to_samples, unpack
from genpost.learned.plugin import Kit, LearnedPostProcessor, base_qp, frame_key, shipped_weights, update_key

from . import codec, engine
from .layout import LATENT, RS, encoder_input, grid, upsample

WHO = "residual-diffusion"
OPTIONS = (
    opt.integer("steps", "0", 0, 8, "0: one-step posterior mean (deterministic); 1..8: DDIM steps from seeded noise"),
    opt.integer("seed", "0", 0, 2**32 - 1, "DDIM noise seed (with the frame index); unused at steps 0"),
    opt.integer("qp", "32", 0, 63, "the QP the denoiser is conditioned on without side info"),
    opt.integer("blind", "0", 0, 1,
                "decoder: without side info run the plain denoiser (1), or leave the frame as decoded (0)"),
    opt.choice("backend", "onnx", BACKENDS, "inference runtime (falls back to the other when missing)"),
    # encoder: multiplier on the planes' BD-safe lambdas (genpost.learned.rd.plane_lambdas)
    opt.number("lambda_scale", "1.0", 0.0, 1e6, "encoder: multiplier on the planes' lambdas"),
    opt.number("record_frames", "8", 1.0, 1e4, "encoder: a new latent-free payload is charged its bits / this"),
    *ADAPT_OPTIONS,  # encoder: content adaptation per period (genpost.learned.adaptive)
)
DEFAULTS = opt.defaults(OPTIONS)
# the denoiser's convs in forward order; the output layer's 6 channels: 4 luma phases, U, V
SPEC = AdaptSpec(convs=("head", *(f"body.{i}" for i in range(5)), "tail"), out_planes=(0, 0, 0, 0, 1, 2))
# the shipped weights: weights/SHA256SUMS (weights/training.json lists the same)
KIT = Kit(WHO, OPTIONS, shipped_weights(__file__), engine.denoiser, SPEC)
_number = KIT.read


def generate(net, frame: Frame, decoded: np.ndarray, latent: np.ndarray | None, steps: int, seed: int) -> Frame:
    """``frame`` plus the residual ``net`` generates from its packed decode + QP plane ``decoded`` (7, h, w)
    and ``latent`` (None: absent): what the decoder runs, and what adaptation measures."""
    from .engine import sample

    h, w = decoded.shape[1:]
    cond = np.zeros((7 + LATENT + 1, h, w), np.float32)
    cond[:7] = decoded
    if latent is not None:
        cond[7 : 7 + LATENT] = upsample(latent, h, w)
        cond[7 + LATENT] = 1.0
    noise = None
    if steps:  # one noise field per seed and frame size, the same in every frame: bit-exact on repeat and
        # temporally stable (noise drawn anew per frame flickers on still content)
        noise = np.random.default_rng([seed, h, w]).standard_normal((6, h, w), np.float32)
    out = decoded[:6] + sample(net, cond, steps, noise) / np.float32(RS)
    y, u, v = unpack(out, frame.height, frame.width)
    return frame.with_planes(*(to_samples(p, frame.max_value, frame.dtype) for p in (y, u, v)))


class ResidualDiffusion(LearnedPostProcessor):
    name = "residual-diffusion"
    version = "2.0.0"  # 2.0: started from the shared trunk, trained on the genpost corpus; a zero latent = flag 0
    side_info = "residual-diffusion/1"
    description = "learned residual latent (1/8 grid, ANS, RD-chosen step) + conditional diffusion decoder (one-step default)"
    kit = KIT
    restoring_options = {"blind": "1"}  # genpost bench: frames without side info run the denoiser (the default 0 leaves them as decoded)

    # ---------------------------------------------------------------- decoder

    def _restored(self, frame: Frame, qp: int, latent: np.ndarray | None, key: bytes, ctx: Context) -> Frame:
        """``frame`` plus the residual the denoiser generates from it and ``latent`` (None: absent)."""
        net = self.adapted(ctx)
        steps, seed = _number(ctx, "steps"), _number(ctx, "seed")

        def run() -> Frame:
            return generate(net, frame, pack(frame.y, frame.u, frame.v, frame.max_value, qp), latent, steps, seed)

        return self._memo.get(frame_key(frame, net.backend), (qp, key, steps, seed, update_key(ctx)), run)

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if payload is None:  # no side info: as decoded, or the blind default mode (with the period's update)
            if not _number(ctx, "blind"):
                return decoded
            return self._restored(decoded, _number(ctx, "qp"), None, b"", ctx)
        body, planes, tag = framing.unwrap(bytes(payload))
        rows, cols = grid(*decoded.u.shape)
        qp, step, q = codec.decode(body, rows, cols)
        if not planes:
            return decoded
        # an all-zero latent is the latent-free mode (flag 0), the one training drops the latent for
        latent = q.astype(np.float32) * np.float32(codec.STEPS[step]) if q.any() else None
        out = self._restored(decoded, qp, latent, body, framing.decoder_context(ctx, tag))
        return framing.keep_planes(out, decoded, planes)

    # ---------------------------------------------------------------- encoder

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """The payload ``genpost.learned.rd.pick`` prefers (no plane's BD-rate rises, then the largest gain in
        bits) among: nothing (0 bits: the frame stays as decoded, or the blind default mode where it loses on
        no plane; never while an update is in force), the payload in force (0 bits), a latent-free payload
        that only sends the QP, and the latent quantised at every step of codec.STEPS; each payload restores
        only the planes where it lowers that plane's SSE (``framing``). D = SSE per plane at the stream's bit
        depth, of what ``restore`` gives; R of a new payload = ctx.record_overhead_bits + 8 * its bytes, divided
        by ``record_frames`` for the latent-free one (frame-independent, so usually extended for free)."""
        from genpost.learned import rd

        qp = base_qp(ctx, _number(ctx, "qp"))
        tag = framing.update_tag(ctx.update) if ctx.update is not None else None
        mu = perceptual_weight(ctx)  # 0 under --target fidelity: D is SSE per plane
        base = plane_distortion(source, decoded, mu)
        lambdas = rd.plane_lambdas(base, ctx.base_bits, ctx.lagrangian) * _number(ctx, "lambda_scale")

        def measure(payload: bytes) -> np.ndarray:  # per-plane D of what restore gives, as the decoder will
            return plane_distortion(source, self.restore(decoded, payload, ctx), mu)

        candidates = [(d, 0.0, p) for d, p in framing.reuse_candidates(ctx, tag, base, measure)]
        default = plane_distortion(source, self.restore(decoded, None, ctx), mu)
        if framing.default_allowed(default, base, tag):
            candidates.append((default, 0.0, b""))
        src = pack(source.y, source.u, source.v, source.max_value)
        dec = pack(decoded.y, decoded.u, decoded.v, decoded.max_value)
        y = self.network(engine.encoder, str(_number(ctx, "backend")))(encoder_input(src, dec, qp))
        spread = _number(ctx, "record_frames")
        tried = set()
        for step in (None, *range(len(codec.STEPS))):
            q = np.zeros(y.shape, np.int32) if step is None else codec.quantise(y, step)
            body = codec.encode(qp, step or 0, q)
            if body in tried:
                continue
            tried.add(body)
            d = measure(framing.wrap(body, framing.ALL_PLANES, tag))
            planes = framing.plane_mask(d, base)
            payload = framing.wrap(body, planes, tag)
            bits = float(ctx.record_overhead_bits + 8 * len(payload))
            # the latent-free payload (QP only) usually goes on over the next frames for free (the payload in
            # force): charged its bits / record_frames; a latent is the frame's own, charged in full
            candidates.append((framing.masked(d, base, planes), bits / spread if step is None else bits, payload))
        return rd.pick(candidates, base, lambdas)

    def adapt(self, pairs, ctx: Context) -> bytes:
        """The period's weight update by RD (``genpost.learned``): tuned for the latent-free one-step mode
        (x_t = 0, t = 1, latent absent) at the base's QP, measured with the decoder's inference."""
        from .engine import make_denoiser

        qp = base_qp(ctx, _number(ctx, "qp"))
        lam = ctx.lagrangian * _number(ctx, "lambda_scale")
        generic = self.adapted(Context(stream=ctx.stream, options=ctx.options))
        steps, seed = _number(ctx, "steps"), _number(ctx, "seed")

        def forward(net, x):  # the QP-only payload's mode: x_t = 0 at t = 1, latent absent (flag 0); x0 = RS * residual
            import torch

            n, _, h, w = x.shape
            inp = torch.cat([torch.zeros(n, 6, h, w), x, torch.ones(n, 1, h, w), torch.zeros(n, LATENT + 1, h, w)], 1)
            return net(inp) / RS

        return self._adaptive.choose(
            generic, pairs, ctx, qp, lam, make_denoiser, forward,
            lambda net, dec, x: generate(net, dec, x, None, steps, seed),
        )  # fmt: skip
