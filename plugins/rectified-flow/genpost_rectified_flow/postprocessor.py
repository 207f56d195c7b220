"""``rectified-flow``: a small conditional velocity network carries the decoded frame (plus seeded, scaled
noise) to the source by Euler sampling in 1..4 steps, starting part-way along the flow. The encoder picks
the sampler settings (steps, start time, noise level, seed, an optional per-plane guidance vector) for each
frame by sampling candidates and comparing D + lambda * R; without side info a documented default runs.

Content adaptation (``genpost.learned``): per period the encoder may tune the velocity network's biases,
per-channel multipliers, per-plane output gains and (mode ``full``) its output layer on the content, for
the one-step sampler, and send the update once; each frame's payload says which planes restore."""

from __future__ import annotations

import dataclasses

import numpy as np

from genpost import Context, Frame, PayloadError
from genpost import options as opt
from genpost.learned import framing
from genpost.learned.adapt import AdaptSpec
from genpost.learned.adaptive import DECLARED as ADAPT_OPTIONS
from genpost.learned.blocks import perceptual_weight, plane_block_sse
from genpost.learned.modeling import BACKENDS, pack, to_samples, unpack
from genpost.learned.plugin import Kit, LearnedPostProcessor, base_qp, frame_key, shipped_weights, update_key

from . import codec
from .codec import Settings
from .engine import Engine

OPT = "rectified-flow."
OPTIONS = (
    # default mode (no side info)
    opt.integer("blind", "0", 0, 1, "0: frames without side info stay as decoded (the generic network can lose a plane); 1: run the sampler below"),
    opt.integer("steps", "1", 1, 4, "default mode: Euler steps"),
    opt.integer("t0", "0", 0, len(codec.T0S) - 1, "default mode: start time index into codec.T0S (0 = 0.0)"),
    opt.integer("sigma", "0", 0, len(codec.SIGMAS) - 1, "default mode: start-noise index into codec.SIGMAS (0 = no noise)"),
    opt.integer("seed", "0", 0, 255, "default mode: noise seed"),
    opt.integer("qp", "32", 0, 63, "the QP the network is conditioned on (a decoder rarely knows the base's)"),
    opt.choice("backend", "onnx", BACKENDS, "inference runtime (falls back to the other when missing)"),
    # encoder
    opt.number("lambda_scale", "1.0", 0.0, 1e6, "encoder: multiplier on ctx.lagrangian"),
    opt.number("perception_weight", "0.0", 0.0, 1e6, "encoder: mu in D = SSE + mu * texture-energy loss"),
    opt.number("record_frames", "8", 1.0, 1e4, "encoder: a new frame-level payload is charged its bits / this"),
    opt.choice("search", "fast", ("full", "fast"), "encoder: how many sampler settings analyze tries (fast: 3, full: 7)"),
    opt.integer("seeds", "2", 1, 256, "encoder: seeds tried per noisy setting (full search)"),
    opt.choice("guidance", "1", ("0", "1"), "encoder: 1 also tries a per-plane guidance vector"),
    *ADAPT_OPTIONS,  # content adaptation per period (genpost.learned.adaptive)
)
DEFAULTS = opt.defaults(OPTIONS)
SPEC = AdaptSpec(convs=("head", *(f"body.{i}" for i in range(5)), "tail"), out_planes=(0, 0, 0, 0, 1, 2))
KIT = Kit("rectified-flow", OPTIONS, shipped_weights(__file__), Engine, SPEC)
_number = KIT.read
# (steps, t0 index, sigma index) tried by analyze; noisy ones with several seeds
SEARCH = {
    "fast": ((1, 0, 0), (2, 0, 0), (2, 0, 1)),
    "full": ((1, 0, 0), (1, 1, 0), (2, 0, 0), (2, 2, 0), (4, 0, 0), (2, 0, 1), (4, 2, 1)),
}


def option(ctx: Context, key: str) -> str:
    return str(_number(ctx, key))


def default_settings(ctx: Context) -> Settings:
    """The sampler used when no side info reached a frame (all from options, see DEFAULTS)."""
    return Settings(
        qp=_number(ctx, "qp"),
        steps=_number(ctx, "steps"),
        t0=_number(ctx, "t0"),
        sigma=_number(ctx, "sigma"),
        seed=_number(ctx, "seed"),
    )


class RectifiedFlow(LearnedPostProcessor):
    name = "rectified-flow"
    version = "2.0.0"  # 2.0: started from the shared trunk, trained on the genpost corpus (docs/training.md)
    side_info = "rectified-flow/1"
    description = "rectified-flow restoration (52k params, 13.0 kMAC/px per step, 1-4 Euler steps), RD-chosen sampler"
    kit = KIT
    restoring_options = {"blind": "1"}  # genpost bench: frames without side info run the sampler (the default 0 leaves them as decoded)

    # ---------------------------------------------------------------- sampling

    def _sampled(self, frame: Frame, s: Settings, ctx: Context) -> np.ndarray:
        """The (6, h, w) end state of the flow for a frame and settings (cached for the current frame)."""
        from .engine import sample

        engine = self.adapted(ctx)
        key = frame_key(frame, engine.backend, update_key(ctx))

        def run() -> np.ndarray:
            d = self._memo.get(key, ("packed", s.qp), lambda: pack(frame.y, frame.u, frame.v, frame.max_value, s.qp))
            eps = None
            if s.sigma:  # one noise field per seed and frame size, the same in every frame: bit-exact on
                # repeat, and temporally stable (noise drawn anew per frame flickers on still content)
                eps = np.random.default_rng([s.seed, *d.shape]).standard_normal(d[:6].shape, np.float32)
            return sample(engine, d, s.steps, codec.T0S[s.t0], codec.SIGMAS[s.sigma], eps)

        return self._memo.get(key, ("sample", s.key()), run)

    @staticmethod
    def _to_frame(frame: Frame, x: np.ndarray, guidance) -> Frame:
        if guidance is not None:
            x = x.copy()
            g = np.asarray(guidance, np.float32) * np.float32(codec.GUIDANCE_UNIT)
            x[:4] += g[0]
            x[4] += g[1]
            x[5] += g[2]
        y, u, v = unpack(x, frame.height, frame.width)
        top = frame.max_value
        return frame.with_planes(*(to_samples(p, top, frame.dtype) for p in (y, u, v)))

    def _apply(self, frame: Frame, s: Settings, ctx: Context) -> Frame:
        out = self._to_frame(frame, self._sampled(frame, s, ctx), s.guidance)
        if s.blocks is None or all(s.blocks):
            return out
        if not any(s.blocks):
            return frame
        rows, cols = codec.grid(frame.width, frame.height)
        on = np.asarray(s.blocks, bool).reshape(rows, cols)
        planes = []
        for base, restored in zip(frame.planes, out.planes):
            size = codec.BLOCK if base is frame.y else codec.BLOCK // 2
            mask = np.repeat(np.repeat(on, size, 0), size, 1)[: base.shape[0], : base.shape[1]]
            planes.append(np.where(mask, restored, base))
        return frame.with_planes(*planes)

    # ---------------------------------------------------------------- decoder

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if payload is None:
            if not _number(ctx, "blind"):
                return decoded
            return self._apply(decoded, default_settings(ctx), ctx)
        body, planes, tag = framing.unwrap(bytes(payload))
        settings = codec.decode(body, *codec.grid(decoded.width, decoded.height))
        out = self._apply(decoded, settings, framing.decoder_context(ctx, tag))
        return framing.keep_planes(out, decoded, planes)

    # ---------------------------------------------------------------- encoder

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """The payload ``genpost.learned.rd.pick`` prefers (no plane's BD-rate rises, then the largest gain in
        bits) among: nothing (the default mode, where it loses on no plane and no update is in force), the payload in
        force (free), every sampler setting of the search (each actually sampled) for the whole frame or with
        its best 64x64-block on/off map, and the best of those with a guidance vector. D = SSE over Y, U and
        V at the stream's bit depth + mu * texture-energy loss (``perception_weight``, default 0). R of a new
        payload = record overhead + payload bits, divided by ``record_frames`` for a plain frame-level setting
        (usually extended over the next frames for free), in full for a block map or guidance (frame-specific)."""
        from genpost.learned import rd

        mu = perceptual_weight(ctx, float(_number(ctx, "perception_weight")))  # 0 under --target fidelity
        spread = _number(ctx, "record_frames")
        seeds = _number(ctx, "seeds")
        search = option(ctx, "search")
        if search not in SEARCH:
            raise ValueError(f"{OPT}search must be one of {', '.join(SEARCH)}, not {search!r}")
        qp = base_qp(ctx, _number(ctx, "qp"))
        tag = framing.update_tag(ctx.update) if ctx.update is not None else None

        def blockwise(out: Frame) -> np.ndarray:
            return plane_block_sse(source, out, codec.BLOCK, mu)  # (3, rows, cols)

        base = blockwise(decoded)
        base_planes = base.sum((1, 2))
        lambdas = rd.plane_lambdas(base_planes, ctx.base_bits, ctx.lagrangian) * _number(ctx, "lambda_scale")
        candidates: list[tuple[np.ndarray, float, bytes]] = []  # (per-plane D, bits, payload), cheapest first

        def offer(per_plane: np.ndarray, payload: bytes, reusable: bool) -> float:
            """Add a payload restoring only the planes it improves; its luma-lambda J (to rank settings)."""
            planes = framing.plane_mask(per_plane, base_planes)
            bits = ctx.record_overhead_bits + 8 * len(payload) + framing.prefix_bits(planes, tag)
            bits = bits / spread if reusable else bits
            d = framing.masked(per_plane, base_planes, planes)
            candidates.append((d, bits, framing.wrap(payload, planes, tag)))
            return float(d.sum() + lambdas[0] * bits)

        if ctx.previous_payload:
            try:
                body, planes, ptag = framing.unwrap(ctx.previous_payload)
                if ptag == tag:
                    d = blockwise(self._apply(decoded, codec.decode(body, *base.shape[1:]), ctx)).sum((1, 2))
                    candidates.append((framing.masked(d, base_planes, planes), 0.0, ctx.previous_payload))
            except PayloadError:
                pass
        default = blockwise(self.restore(decoded, None, ctx)).sum((1, 2))
        if framing.default_allowed(default, base_planes, tag):
            candidates.append((default, 0.0, b""))
        best: tuple[float, Settings] | None = None

        def consider(s: Settings, per_block: np.ndarray) -> None:
            nonlocal best
            on = per_block.sum(0) < base.sum(0)
            mapped = dataclasses.replace(s, blocks=tuple(bool(b) for b in on.ravel()))
            for settings, d, reusable in (
                (s, per_block.sum((1, 2)), s.guidance is None),
                (mapped, np.where(on, per_block, base).sum((1, 2)), False),
            ):
                j = offer(d, codec.encode(settings), reusable)
                if best is None or j < best[0]:
                    best = (j, settings)

        for steps, t0, sigma in SEARCH[search]:
            for seed in range(seeds if sigma else 1):
                s = Settings(qp, steps, t0, sigma, seed)
                consider(s, blockwise(self._apply(decoded, s, ctx)))
        if best is not None and option(ctx, "guidance") != "0":
            s = best[1]
            g = _guidance(source, self._sampled(decoded, s, ctx))
            if any(g):
                guided = dataclasses.replace(s, guidance=g, blocks=None)
                consider(guided, blockwise(self._apply(decoded, guided, ctx)))
        return rd.pick(candidates, base_planes, lambdas)

    def adapt(self, pairs, ctx: Context) -> bytes:
        """The period's weight update by RD (``genpost.learned``): tuned for the one-step sampler from the
        decode (t0 = 0, no noise) on the sampled pairs, measured with the decoder's inference."""
        from .engine import make_velocity_net, sample

        qp = base_qp(ctx, _number(ctx, "qp"))
        lam = ctx.lagrangian * _number(ctx, "lambda_scale")
        generic = self.adapted(Context(stream=ctx.stream, options=ctx.options))

        def forward(net, x):  # one Euler step from t = 0: the velocity is the residual
            import torch

            return net(torch.cat([x[:, :6], x, torch.zeros_like(x[:, :1])], 1))

        return self._adaptive.choose(
            generic, pairs, ctx, qp, lam, make_velocity_net, forward,
            lambda net, dec, x: self._to_frame(dec, sample(net, x, 1, 0.0, 0.0, None), None),
        )  # fmt: skip


def _guidance(source: Frame, x: np.ndarray) -> tuple[int, int, int]:
    """Per-plane mean of (source - sampled) in codec.GUIDANCE_UNIT, clipped to i8."""
    err = pack(source.y, source.u, source.v, source.max_value) - x
    means = (err[:4].mean(), err[4].mean(), err[5].mean())
    return tuple(int(np.clip(round(float(m) / codec.GUIDANCE_UNIT), -128, 127)) for m in means)
