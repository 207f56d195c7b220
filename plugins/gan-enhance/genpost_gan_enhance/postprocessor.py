"""``gan-enhance``: a small QP-conditioned generator with a distortion head and a perception head,
blended per 64x64 block by a realism map the encoder chooses by rate-distortion(-perception) cost.

Content adaptation (``genpost.learned``): per period the encoder may tune the biases, per-channel
multipliers, per-plane output gains and (mode ``full``) the output layer on the content, and send the
quantised update once; every frame of the period then restores with the shipped weights plus that update.
Each frame's payload says which planes restore, so no plane is made worse than the decode."""

from __future__ import annotations

import numpy as np

from genpost import Context, Frame, PayloadError
from genpost import options as opt
from genpost.learned import framing
from genpost.learned.adapt import AdaptSpec
from genpost.learned.adaptive import DECLARED as ADAPT_OPTIONS
from genpost.learned.blocks import perceptual_weight, plane_block_sse
from genpost.learned.modeling import BACKENDS, PRECISIONS, pack, to_samples, unpack
from genpost.learned.plugin import Kit, LearnedPostProcessor, frame_key, shipped_weights, update_key

from . import codec
from .engine import Engine, pick

OPTIONS = (
    # default mode (no side info for a frame): residual scale s. 0 by default: without side info the decoder
    # cannot know whether the generic network helps this content (it can lose a plane), so it leaves the
    # frame as decoded; 1 runs it blind
    opt.number("strength", "0.0", 0.0, 2.0, "default mode: residual scale (0 leaves frames without side info as decoded)"),
    opt.number("realism", "0.0", 0.0, 1.0, "default mode: 0 distortion head .. 1 perception head"),
    opt.integer("qp", "32", 0, 63, "default mode: the QP the generator is conditioned on"),
    opt.choice("backend", "onnx", BACKENDS, "inference runtime (falls back to the other when missing)"),
    opt.choice("precision", "fp32", PRECISIONS, "torch backend: bf16 runs under autocast"),
    opt.number("lambda_scale", "1.0", 0.0, 1e6, "encoder: multiplier on ctx.lagrangian"),
    opt.number("perception_weight", "0.0", 0.0, 1e6, "encoder: mu in D = SSE + mu * texture-energy loss"),
    opt.number("record_frames", "8", 1.0, 1e4, "encoder: a new one-level payload is charged its bits / this"),
    *ADAPT_OPTIONS,  # encoder: content adaptation per period (genpost.learned.adaptive)
)
DEFAULTS = opt.defaults(OPTIONS)
# the generator's convs in forward order; the output layer's 12 channels: r_dist then r_perc, each
# 4 luma phases + U + V
SPEC = AdaptSpec(
    convs=("head", *(f"body.{i}" for i in range(5)), "tail"), out_planes=(0, 0, 0, 0, 1, 2) * 2
)
KIT = Kit("gan-enhance", OPTIONS, shipped_weights(__file__), Engine, SPEC)
_number = KIT.read


def option(ctx: Context, key: str) -> str:
    return str(_number(ctx, key))


def _float_option(ctx: Context, key: str) -> float:
    return float(_number(ctx, key))


class GanEnhance(LearnedPostProcessor):
    name = "gan-enhance"
    version = "2.2.0"  # 2.0: weights trained on the genpost corpus (genpost.learned), docs/training.md; 2.1, 2.2: the same run further on (2.2: its end, step 50,000, adversarial phase included)
    side_info = "gan-enhance/1"
    description = "GAN restoration (52k params, 12.9 kMAC/px) with an RD-chosen per-block realism map"
    parameter_count = 51_756  # README "parameters"
    kmac_per_pixel = 12.9  # README "compute"
    patch_size = (256, 256)  # engine.TILE at chroma resolution
    patch_overlap = 8  # engine.HALO
    strength_input = True  # the constant (QP - 27) / 15 plane
    kit = KIT
    restoring_options = {"strength": "1"}  # genpost bench: frames without side info at residual scale 1 (the default 0 leaves them as decoded)

    # ---------------------------------------------------------------- model

    def _engine_for(self, ctx: Context):
        """The generator with the shipped weights, or with the period's update applied (``ctx.update``)."""
        wanted, precision = pick(option(ctx, "backend")), option(ctx, "precision")
        precision = precision if wanted == "torch" or precision not in ("fp32", "bf16") else "fp32"
        return self.adapted(ctx, precision)

    def _residuals(self, frame: Frame, qp: int, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(packed input (7,h,w), residuals (12,h,w)) for a frame, cached for the current frame per QP and update."""
        def run() -> tuple[np.ndarray, np.ndarray]:
            x = pack(frame.y, frame.u, frame.v, frame.max_value, qp)
            return x, self._engine_for(ctx)(x)

        key = frame_key(frame, pick(option(ctx, "backend")), option(ctx, "precision"), update_key(ctx))
        return self._memo.get(key, qp, run)

    @staticmethod
    def _blend(frame: Frame, x: np.ndarray, r: np.ndarray, strength: np.ndarray, beta: np.ndarray) -> Frame:
        """x + s * (r_dist + beta * (r_perc - r_dist)), with s and beta per chroma sample (or scalars)."""
        rd, rp = r[:6], r[6:]
        out = x[:6] + strength * (rd + beta * (rp - rd))
        y, u, v = unpack(out, frame.height, frame.width)
        top = frame.max_value
        planes = [to_samples(p, top, frame.dtype) for p in (y, u, v)]
        return frame.with_planes(*planes)

    @staticmethod
    def _maps(levels: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        half = codec.BLOCK // 2
        table = np.asarray(codec.LEVELS, np.float32)
        full = np.repeat(np.repeat(levels, half, 0), half, 1)[:h, :w]
        return table[full, 0], table[full, 1]

    def _apply(self, frame: Frame, qp: int, levels: np.ndarray, ctx: Context, planes: int = framing.ALL_PLANES) -> Frame:
        if not levels.any() or not planes:
            return frame  # every block or every plane off: the base
        x, r = self._residuals(frame, qp, ctx)
        s, b = self._maps(levels, *x.shape[1:])
        return framing.keep_planes(self._blend(frame, x, r, s, b), frame, planes)

    # ---------------------------------------------------------------- decoder

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if payload is None:  # default mode: global strength and realism (with the period's update, if any)
            strength = _float_option(ctx, "strength")
            beta = _float_option(ctx, "realism")
            qp = int(_float_option(ctx, "qp"))
            if strength == 0.0:
                return decoded
            x, r = self._residuals(decoded, qp, ctx)
            return self._blend(decoded, x, r, np.float32(strength), np.float32(beta))
        body, planes, tag = framing.unwrap(bytes(payload))
        qp, levels = codec.decode(body, *codec.grid(decoded.width, decoded.height))
        return self._apply(decoded, qp, levels, framing.decoder_context(ctx, tag), planes)

    # ---------------------------------------------------------------- encoder

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """The payload ``genpost.learned.rd.pick`` prefers (no plane's BD-rate rises, then the largest gain
        in bits) among: nothing (the default mode; only where it loses on no plane and no update is in
        force, so a lost update is always detected), the payload in force (free), one level for the frame
        (its bits spread over ``record_frames``: such a payload is usually extended over the next frames at
        no cost), and the Viterbi-optimal block map. Each restores only the planes where it lowers that
        plane's error. D = SSE per plane at the stream's bit depth (+ mu * texture-energy loss on Y,
        ``perception_weight``, default 0), measured with the weights the decoder will run."""
        from genpost.learned import rd

        mu = perceptual_weight(ctx, _float_option(ctx, "perception_weight"))  # 0 under --target fidelity
        qp = int(ctx.qp if ctx.qp is not None else _float_option(ctx, "qp"))
        tag = framing.update_tag(ctx.update) if ctx.update is not None else None
        rows, cols = codec.grid(decoded.width, decoded.height)
        x, r = self._residuals(decoded, qp, ctx)
        costs = np.stack([
            plane_block_sse(source, self._blend(decoded, x, r, np.float32(s), np.float32(b)), codec.BLOCK, mu)
            for s, b in codec.LEVELS
        ], -1)  # fmt: skip  (planes, rows, cols, levels)
        overhead = ctx.record_overhead_bits
        base = costs[..., 0].sum((1, 2))  # level 0 is the decode itself
        scale = _float_option(ctx, "lambda_scale")
        lambdas = rd.plane_lambdas(base, ctx.base_bits, ctx.lagrangian) * scale
        candidates: list[tuple[np.ndarray, float, bytes]] = []  # (per-plane D, bits, payload), cheapest first
        if ctx.previous_payload:
            try:
                body, pplanes, ptag = framing.unwrap(ctx.previous_payload)
                pqp, plev = codec.decode(body, rows, cols)
                if pqp == qp and ptag == tag:
                    candidates.append((framing.masked(_plane_costs(costs, plev), base, pplanes), 0.0, ctx.previous_payload))
            except PayloadError:
                pass
        default = plane_block_sse(source, self.restore(decoded, None, ctx), codec.BLOCK, mu).sum((1, 2))
        if framing.default_allowed(default, base, tag):
            candidates.append((default, 0.0, b""))
        spread = _float_option(ctx, "record_frames")
        for level in range(len(codec.LEVELS)):
            levels = np.full((rows, cols), level)
            planes = framing.plane_mask(_plane_costs(costs, levels), base)
            payload = framing.wrap(codec.encode(qp, levels), planes, tag)
            bits = (overhead + 32 + framing.prefix_bits(planes, tag)) / spread  # usually extended over runs
            candidates.append((framing.masked(_plane_costs(costs, levels), base, planes), bits, payload))
        levels = self._viterbi(costs.sum(0).reshape(-1, len(codec.LEVELS)), float(lambdas[0])).reshape(rows, cols)
        planes = framing.plane_mask(_plane_costs(costs, levels), base)
        payload = framing.wrap(codec.encode(qp, levels), planes, tag)
        candidates.append((framing.masked(_plane_costs(costs, levels), base, planes), overhead + 8.0 * len(payload), payload))
        return rd.pick(candidates, base, lambdas)

    def adapt(self, pairs, ctx: Context) -> bytes:
        """The period's weight update by RD (``genpost.learned``): tuned on the sampled pairs with the
        distortion head at strength 1, measured with the decoder's inference; b"" when none pays."""
        from .engine import make_generator

        qp = int(ctx.qp if ctx.qp is not None else _float_option(ctx, "qp"))
        lam = ctx.lagrangian * _float_option(ctx, "lambda_scale")
        generic = self._engine_for(Context(stream=ctx.stream, options=ctx.options))
        one = np.float32(1.0), np.float32(0.0)
        return self._adaptive.choose(
            generic, pairs, ctx, qp, lam, make_generator, lambda net, x: net(x)[:, :6],
            lambda net, dec, x: self._blend(dec, x, net(x), *one),
        )  # fmt: skip

    @staticmethod
    def _viterbi(costs: np.ndarray, lam: float) -> np.ndarray:
        """Levels per block (raster order) minimising sum D + lam * map bits under the codec's run coding."""
        n, k = costs.shape
        trans = np.array([[codec.change_bits(p, c) for c in range(k)] for p in range(k)], np.float64) * lam
        acc = costs[0] + 2 * lam
        back = np.zeros((n, k), np.intp)
        for i in range(1, n):
            total = acc[:, None] + trans
            back[i] = total.argmin(0)
            acc = total[back[i], np.arange(k)] + costs[i]
        path = np.empty(n, np.uint8)
        path[-1] = acc.argmin()
        for i in range(n - 1, 0, -1):
            path[i - 1] = back[i, path[i]]
        return path


def _plane_costs(costs: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(3,) per-plane D of a level map, from per-plane block costs (3, rows, cols, levels)."""
    idx = np.broadcast_to(levels[None, ..., None].astype(np.intp), (3, *levels.shape, 1))
    return np.take_along_axis(costs, idx, -1).sum((1, 2, 3))
