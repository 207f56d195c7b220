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

import zlib

import numpy as np

from genpost import Context, Frame, PostProcessor
from genpost import options as opt
from genpost.learned import framing
from genpost.learned.adapt import AdaptSpec
from genpost.learned.adaptive import DECLARED as ADAPT_OPTIONS
from genpost.learned.adaptive import AdaptiveNetwork
from genpost.learned.plugin import base_qp, option_reader, shipped_weights
from genpost.learned.rd import plane_sse
from genpost.modeling import BACKENDS, pack, to_samples, unpack

from . import codec
from .layout import LATENT, RS, encoder_input, grid, upsample

WHO = "residual-diffusion"
# sha256 of the shipped weights (weights/training.json lists the same)
SHA256 = {
    "latent_encoder_v1.onnx": "0a77b3a7f94352800884262b309a9ecf90a68f8f61de04113300d2270d435a2f",
    "latent_encoder_v1.safetensors": "ce57aea932128ae06d2cdfec72f7d00d65620289eafd432698c3fb6d0a1fdee9",
    "residual_denoiser_v1.onnx": "6ae78fb918a18289b42709fc532bf96f8607092d89bd1772841b54eb8742572d",
    "residual_denoiser_v1.safetensors": "e29f7442eca9d0c335fe5a094b339a6636f652e1557f2a51732b65fd704970ff",
}
OPTIONS = (
    opt.integer("steps", "0", 0, 8, "0: one-step posterior mean (deterministic); 1..8: DDIM steps from seeded noise"),
    opt.integer("seed", "0", 0, 2**32 - 1, "DDIM noise seed (with the frame index); unused at steps 0"),
    opt.integer("qp", "32", 0, 63, "the QP the denoiser is conditioned on without side info"),
    opt.integer("blind", "0", 0, 1,
                "decoder: without side info run the plain denoiser (1), or leave the frame as decoded (0)"),
    opt.choice("backend", "onnx", BACKENDS, "inference runtime (falls back to the other when missing)"),
    # encoder: multiplier on the planes' BD-safe lambdas (genpost.learned.rd.plane_lambdas)
    opt.number("lambda_scale", "1.0", 0.0, 1e6, "encoder: multiplier on the planes' lambdas"),
    *ADAPT_OPTIONS,  # encoder: content adaptation per period (genpost.learned.adaptive)
)
DEFAULTS = opt.defaults(OPTIONS)
_number = option_reader(WHO, OPTIONS)
# the denoiser's convs in forward order; the output layer's 6 channels: 4 luma phases, U, V
SPEC = AdaptSpec(convs=("head", *(f"body.{i}" for i in range(4)), "tail"), out_planes=(0, 0, 0, 0, 1, 2))


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
    if steps:  # the noise depends on the seed and the frame index only: bit-exact on repeat
        noise = np.random.default_rng([seed, frame.index & 0xFFFFFFFF]).standard_normal((6, h, w), np.float32)
    out = decoded[:6] + sample(net, cond, steps, noise) / np.float32(RS)
    y, u, v = unpack(out, frame.height, frame.width)
    return frame.with_planes(*(to_samples(p, frame.max_value, frame.dtype) for p in (y, u, v)))


class ResidualDiffusion(PostProcessor):
    name = "residual-diffusion"
    version = "1.0.0"
    api_version = 1
    side_info = "residual-diffusion/1"
    description = "learned residual latent (1/8 grid, ANS, RD-chosen step) + conditional diffusion decoder (one-step default)"
    weights = shipped_weights(__file__, SHA256)

    options = OPTIONS

    def __init__(self):
        self._device = "cpu"
        self._nets: dict[str, object] = {}
        self._frame_key = None
        self._cache: dict[tuple, Frame] = {}  # per (qp, payload, steps, seed, update) for the current frame
        # the options' prefix, not self.name: a subclass under another name (genpost.testing's tracer)
        # reads the adapt options its other options come from
        self._adaptive = AdaptiveNetwork(WHO, SPEC, SHA256["residual_denoiser_v1.safetensors"])

    def setup(self, device: str = "cpu") -> None:
        self._device = device
        self._net("denoiser", DEFAULTS["backend"])

    def _net(self, which: str, requested: str):
        from genpost.modeling import pick_backend

        from . import engine

        backend = pick_backend(requested, WHO)
        net = self._nets.get(which)
        if net is None or net.backend != backend:
            net = self._nets[which] = getattr(engine, which)(self, backend, self._device)
        return net

    # ---------------------------------------------------------------- decoder

    def _denoiser(self, ctx: Context):
        """The denoiser with the shipped weights, or with the period's update applied (``ctx.update``)."""
        return self._adaptive.engine(self._net("denoiser", str(_number(ctx, "backend"))), ctx.update)

    def _restored(self, frame: Frame, qp: int, latent: np.ndarray | None, key: bytes, ctx: Context) -> Frame:
        """``frame`` plus the residual the denoiser generates from it and ``latent`` (None: absent)."""
        net = self._denoiser(ctx)
        steps, seed = _number(ctx, "steps"), _number(ctx, "seed")
        frame_key = (net.backend, frame.index, frame.bit_depth, frame.y.shape, *(zlib.crc32(p.tobytes()) for p in frame.planes))
        if frame_key != self._frame_key:
            self._frame_key, self._cache = frame_key, {}
        update = zlib.crc32(ctx.update) if ctx.update is not None else None
        ckey = (qp, key, steps, seed, update)
        if ckey not in self._cache:
            packed = pack(frame.y, frame.u, frame.v, frame.max_value, qp)
            self._cache[ckey] = generate(net, frame, packed, latent, steps, seed)
        return self._cache[ckey]

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
        latent = q.astype(np.float32) * np.float32(codec.STEPS[step])
        out = self._restored(decoded, qp, latent, body, framing.decoder_context(ctx, tag))
        return framing.keep_planes(out, decoded, planes)

    # ---------------------------------------------------------------- encoder

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """The payload ``genpost.learned.rd.pick`` prefers (no plane's BD-rate rises, then the largest gain in
        bits) among: nothing (0 bits: the frame stays as decoded, or the blind default mode where it loses on
        no plane; never while an update is in force), the payload in force (0 bits), a latent-free payload
        that only sends the QP, and the latent quantised at every step of codec.STEPS; each payload restores
        only the planes where it lowers that plane's SSE (``framing``). D = SSE per plane at the stream's bit
        depth, of what ``restore`` gives; R of a new payload = ctx.record_overhead_bits + 8 * its bytes."""
        from genpost.learned import rd

        qp = base_qp(ctx, _number(ctx, "qp"))
        tag = framing.update_tag(ctx.update) if ctx.update is not None else None
        base = plane_sse(source, decoded)
        lambdas = rd.plane_lambdas(base, ctx.base_bits, ctx.lagrangian) * _number(ctx, "lambda_scale")

        def measure(payload: bytes) -> np.ndarray:  # per-plane D of what restore gives, as the decoder will
            return plane_sse(source, self.restore(decoded, payload, ctx))

        candidates = [(d, 0.0, p) for d, p in framing.reuse_candidates(ctx, tag, base, measure)]
        default = plane_sse(source, self.restore(decoded, None, ctx))
        if framing.default_allowed(default, base, tag):
            candidates.append((default, 0.0, b""))
        src = pack(source.y, source.u, source.v, source.max_value)
        dec = pack(decoded.y, decoded.u, decoded.v, decoded.max_value)
        y = self._net("encoder", str(_number(ctx, "backend")))(encoder_input(src, dec, qp))
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
            candidates.append((framing.masked(d, base, planes), float(ctx.record_overhead_bits + 8 * len(payload)), payload))
        return rd.pick(candidates, base, lambdas)

    def adapt(self, pairs, ctx: Context) -> bytes:
        """The period's weight update by RD (``genpost.learned``): tuned for the latent-free one-step mode
        (x_t = 0, t = 1, latent absent) at the base's QP, measured with the decoder's inference."""
        from .engine import make_denoiser

        qp = base_qp(ctx, _number(ctx, "qp"))
        lam = ctx.lagrangian * _number(ctx, "lambda_scale")
        generic = self._denoiser(Context(stream=ctx.stream, options=ctx.options))
        steps, seed = _number(ctx, "steps"), _number(ctx, "seed")

        def forward(net, x):  # the QP-only payload's mode: x_t = 0 at t = 1, zero latent (flag 1); x0 = RS * residual
            import torch

            n, _, h, w = x.shape
            inp = torch.cat([torch.zeros(n, 6, h, w), x, torch.ones(n, 1, h, w), torch.zeros(n, LATENT, h, w), torch.ones(n, 1, h, w)], 1)
            return net(inp) / RS

        return self._adaptive.choose(
            generic, pairs, ctx, qp, lam, make_denoiser, forward,
            lambda net, dec, x: generate(net, dec, x, np.zeros((LATENT, *grid(*x.shape[1:])), np.float32), steps, seed),
        )  # fmt: skip
