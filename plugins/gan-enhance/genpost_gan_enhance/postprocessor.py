"""``gan-enhance``: a small QP-conditioned generator with a distortion head and a perception head,
blended per 64x64 block by a realism map the encoder chooses by rate-distortion(-perception) cost.

Content adaptation (``genpost.learned``): per period the encoder may tune the biases, per-channel
multipliers, per-plane output gains and (mode ``full``) the output layer on the content, and send the
quantised update once; every frame of the period then restores with the shipped weights plus that update.
Each frame's payload says which planes restore, so no plane is made worse than the decode."""

from __future__ import annotations

import dataclasses
import logging
import zlib
from pathlib import Path

import numpy as np

from genpost import Context, Frame, PayloadError, PostProcessor, WeightsFile
from genpost.learned import adapt as adapting
from genpost.learned.rd import plane_sse
from genpost.modeling import pack, runtime_installed, to_samples, unpack

from . import codec

# absolute: genpost.weights resolves a relative path against the module of the instance's class, which
# for a subclass defined elsewhere (the contract kit's tracer) is not this package
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULTS = {
    "strength": "1.0",  # default mode (no side info): residual scale s
    "realism": "0.0",  # default mode: beta, 0 = distortion head, 1 = perception head
    "qp": "32",  # default mode: the QP the generator is conditioned on (a decoder rarely knows the base's)
    "backend": "onnx",  # onnx | torch (falls back to the other when its runtime is missing)
    "precision": "fp32",  # fp32 | bf16 (torch backend: autocast; measured slower than fp32 here)
    "lambda_scale": "1.0",  # encoder: multiplier on ctx.lagrangian
    "perception_weight": "0.0",  # encoder: mu in D = SSE + mu * texture-energy loss
    "record_frames": "8",  # encoder: a new one-level payload is charged its bits / this (it is usually reused)
    "adapt": "auto",  # encoder: content adaptation per period: auto (RD among off/small/full) | off | small | full
    "adapt_steps": "300",  # encoder: fine-tuning steps per adaptation mode and period
    "adapt_seconds": "30",  # encoder: time budget per mode and period for those steps
}
ADAPT_MODES = {"auto": ("small", "full"), "off": (), "small": ("small",), "full": ("full",)}
# the generator's convs in forward order; the output layer's 12 channels: r_dist then r_perc, each
# 4 luma phases + U + V
SPEC = adapting.AdaptSpec(
    convs=("head", *(f"body.{i}" for i in range(5)), "tail"), out_planes=(0, 0, 0, 0, 1, 2) * 2
)


def option(ctx: Context, key: str) -> str:
    return ctx.option("gan-enhance", key, DEFAULTS[key])


def _float_option(ctx: Context, key: str, lo: float, hi: float) -> float:
    return ctx.number("gan-enhance", key, DEFAULTS[key], lo, hi)


class GanEnhance(PostProcessor):
    name = "gan-enhance"
    version = "1.0.0"
    api_version = 1
    side_info = "gan-enhance/1"
    description = "GAN restoration (52k params, 12.9 kMAC/px) with an RD-chosen per-block realism map"
    weights = (
        WeightsFile(str(WEIGHTS_DIR / "gan_enhance_v1.onnx"), "0d347548d28067c8682327bd279253e9d80eb4f2f4950bc467b5b49756a952b8"),
        WeightsFile(str(WEIGHTS_DIR / "gan_enhance_v1.safetensors"), "a7930af26c62611d1b9c3a7787d4acaa959428dc3a65c8b8f9618e3c612f6df6"),
    )

    def __init__(self):
        self._device = "cpu"
        self._engine = None
        self._cache: tuple | None = None
        self._adapted: tuple | None = None  # (update payload, engine running it) for the period in force
        self._shipped: dict | None = None

    def setup(self, device: str = "cpu") -> None:
        from .engine import Engine

        self._device = device
        self._engine = Engine(self, DEFAULTS["backend"], device)

    # ---------------------------------------------------------------- model

    def _engine_for(self, ctx: Context):
        """The generator with the shipped weights, or with the period's update applied (``ctx.update``)."""
        from .engine import Engine, pick

        wanted, precision = pick(option(ctx, "backend")), option(ctx, "precision")
        precision = precision if wanted == "torch" or precision not in ("fp32", "bf16") else "fp32"
        if self._engine is None or (self._engine.backend, self._engine.precision) != (wanted, precision):
            self._engine, self._adapted = Engine(self, wanted, self._device, precision), None
        if ctx.update is None:
            return self._engine
        if self._adapted is None or self._adapted[0] != ctx.update:
            state = adapting.apply(self._shipped_state(), SPEC, self._decode_update(ctx.update))
            self._adapted = (ctx.update, self._engine.with_state(state))
        return self._adapted[1]

    def _shipped_state(self) -> dict:
        if self._shipped is None:
            self._shipped = self._engine.shipped_state()
        return self._shipped

    def _decode_update(self, update: bytes) -> adapting.Update:
        sizes = SPEC.sizes(self._shipped_state())
        try:
            return adapting.decode_update(update, SPEC, sizes, adapting.weights_tag(self.weights[1].sha256))
        except adapting.UpdateError as exc:
            raise PayloadError(f"gan-enhance update: {exc}") from None

    def _residuals(self, frame: Frame, qp: int, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(packed input (7,h,w), residuals (12,h,w)) for a frame, cached for the last frame, QP and update."""
        from .engine import pick

        update = zlib.crc32(ctx.update) if ctx.update is not None else None
        key = (pick(option(ctx, "backend")), option(ctx, "precision"), update, frame.index, qp, frame.bit_depth, frame.y.shape, *(zlib.crc32(p.tobytes()) for p in frame.planes))
        if self._cache is None or self._cache[0] != key:
            x = pack(frame.y, frame.u, frame.v, frame.max_value, qp)
            self._cache = (key, x, self._engine_for(ctx)(x))
        return self._cache[1], self._cache[2]

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

    def _apply(self, frame: Frame, qp: int, levels: np.ndarray, ctx: Context, planes: int = codec.ALL_PLANES) -> Frame:
        if not levels.any() or not planes:
            return frame  # every block or every plane off: the base
        x, r = self._residuals(frame, qp, ctx)
        s, b = self._maps(levels, *x.shape[1:])
        return _keep_planes(self._blend(frame, x, r, s, b), frame, planes)

    # ---------------------------------------------------------------- decoder

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if payload is None:  # default mode: global strength and realism (with the period's update, if any)
            strength = _float_option(ctx, "strength", 0.0, 2.0)
            beta = _float_option(ctx, "realism", 0.0, 1.0)
            qp = int(_float_option(ctx, "qp", 0, 63))
            if strength == 0.0:
                return decoded
            x, r = self._residuals(decoded, qp, ctx)
            return self._blend(decoded, x, r, np.float32(strength), np.float32(beta))
        qp, levels, planes, tag = codec.decode_v2(bytes(payload), *codec.grid(decoded.width, decoded.height))
        if tag is None:
            ctx = dataclasses.replace(ctx, update=None)  # coded for the shipped weights
        elif ctx.update is None or codec.update_tag(ctx.update) != tag:
            raise PayloadError("gan-enhance: this frame's content-adaptive update was lost or damaged")
        return self._apply(decoded, qp, levels, ctx, planes)

    # ---------------------------------------------------------------- encoder

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """The payload with the least J = D + lambda * bits among: nothing (default mode; not while an update
        is in force, so a lost update is always detected), the payload in force (free), one level for the
        frame (its bits spread over ``record_frames``, since such a payload is usually extended over the next
        frames at no cost), and the Viterbi-optimal block map. Each restores only the planes where it lowers
        that plane's error. D = SSE over Y, U and V at the stream's bit depth + mu * texture-energy loss
        (``perception_weight``, default 0), measured with the weights the decoder will run."""
        lam = ctx.lagrangian * _float_option(ctx, "lambda_scale", 0.0, 1e6)
        mu = _float_option(ctx, "perception_weight", 0.0, 1e6)
        qp = int(ctx.qp if ctx.qp is not None else _float_option(ctx, "qp", 0, 63))
        tag = codec.update_tag(ctx.update) if ctx.update is not None else None
        rows, cols = codec.grid(decoded.width, decoded.height)
        x, r = self._residuals(decoded, qp, ctx)
        costs = np.stack([
            self._block_distortion(source, self._blend(decoded, x, r, np.float32(s), np.float32(b)), rows, cols, mu)
            for s, b in codec.LEVELS
        ], -1)  # fmt: skip  (planes, rows, cols, levels)
        overhead = ctx.record_overhead_bits
        candidates: list[tuple[float, bytes]] = []
        if ctx.previous_payload:
            try:
                pqp, plev, pplanes, ptag = codec.decode_v2(ctx.previous_payload, rows, cols)
                if pqp == qp and ptag == tag:
                    candidates.append((_masked_cost(costs, plev, pplanes), ctx.previous_payload))
            except PayloadError:
                pass
        if tag is None:
            candidates.append((self._measure(source, decoded, None, ctx, mu), b""))
        spread = _float_option(ctx, "record_frames", 1.0, 1e4)
        extra = 8 * (len(codec.encode(qp, np.zeros((1, 1)), 0, tag)) - 4)  # the version-2 prefix, if needed
        for level in range(len(codec.LEVELS)):
            levels = np.full((rows, cols), level)
            planes = _best_planes(costs, levels)
            payload = codec.encode(qp, levels, planes, tag)
            bits = (overhead + 32 + (extra if payload[0] == 2 else 0)) / spread  # usually extended over runs
            candidates.append((_masked_cost(costs, levels, planes) + lam * bits, payload))
        levels = self._viterbi(costs.sum(0).reshape(-1, len(codec.LEVELS)), lam).reshape(rows, cols)
        planes = _best_planes(costs, levels)
        payload = codec.encode(qp, levels, planes, tag)
        candidates.append((_masked_cost(costs, levels, planes) + lam * (overhead + 8 * len(payload)), payload))
        return min(candidates, key=lambda c: c[0])[1]  # ties: the earlier (cheaper to send) candidate

    def adapt(self, pairs, ctx: Context) -> bytes:
        """The period's weight update by RD (``genpost.learned.rd``): tuned on the sampled pairs with the
        distortion head at strength 1, measured with the decoder's inference; b"" when none pays."""
        mode = option(ctx, "adapt")
        if mode not in ADAPT_MODES:
            raise ValueError(f"gan-enhance.adapt must be one of {', '.join(ADAPT_MODES)}, not {mode!r}")
        if not ADAPT_MODES[mode] or not pairs:
            return b""
        if not runtime_installed("torch"):
            logging.getLogger("genpost").warning("gan-enhance: content adaptation needs torch (pip install 'genpost[adapt]'); sending no update")
            return b""
        from genpost.learned import rd
        from genpost.learned.finetune import Recipe

        from .engine import make_generator

        qp = int(ctx.qp if ctx.qp is not None else _float_option(ctx, "qp", 0, 63))
        engine = self._engine_for(dataclasses.replace(ctx, update=None))
        train = rd.training_pairs(pairs, qp)

        def measure(state) -> float:
            net = engine if state is None else engine.with_state(state)
            total = 0.0
            for (src, dec), (x, _) in zip(pairs, train):
                out = self._blend(dec, x, net(x), np.float32(1.0), np.float32(0.0))
                total += float(np.minimum(plane_sse(src, out), plane_sse(src, dec)).sum())
            return total

        problem = rd.Problem(
            SPEC, self._shipped_state(), adapting.weights_tag(self.weights[1].sha256), make_generator,
            lambda net, x: net(x)[:, :6], measure,
        )  # fmt: skip
        recipe = Recipe(
            steps=int(ctx.number("gan-enhance", "adapt_steps", DEFAULTS["adapt_steps"], 0, 100000, True)),
            seconds=ctx.number("gan-enhance", "adapt_seconds", DEFAULTS["adapt_seconds"], 0, 1e6),
        )  # fmt: skip
        lam = ctx.lagrangian * _float_option(ctx, "lambda_scale", 0.0, 1e6)
        payload, _ = rd.choose(problem, train, ADAPT_MODES[mode], lam, ctx.record_overhead_bits,
                               max(1, ctx.period_frames), recipe, pairs[0][1].max_value)  # fmt: skip
        return payload

    def _measure(self, source: Frame, decoded: Frame, payload, ctx: Context, mu: float) -> float:
        rows, cols = codec.grid(decoded.width, decoded.height)
        return float(self._block_distortion(source, self.restore(decoded, payload, ctx), rows, cols, mu).sum())

    @staticmethod
    def _block_distortion(source: Frame, out: Frame, rows: int, cols: int, mu: float) -> np.ndarray:
        """(3, rows, cols) SSE of Y, U, V per 64x64 block (+ on Y: mu * sum over 8x8 luma cells of
        64*(sd_src - sd_out)^2)."""
        total = np.zeros((3, rows, cols))
        for p, (a, b, size) in enumerate(((source.y, out.y, codec.BLOCK), (source.u, out.u, codec.BLOCK // 2), (source.v, out.v, codec.BLOCK // 2))):
            total[p] = _block_sum((a.astype(np.float64) - b) ** 2, size, rows, cols)
        if mu:
            sd_a, sd_b = _cell_sd(source.y), _cell_sd(out.y)
            total[0] += mu * _block_sum(64.0 * (sd_a - sd_b) ** 2, codec.BLOCK // 8, rows, cols)
        return total

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


def _best_planes(costs: np.ndarray, levels: np.ndarray) -> int:
    """The plane mask that restores a plane only where the map lowers its D (level 0 = the decode)."""
    on = _plane_costs(costs, levels) < costs[..., 0].sum((1, 2))
    return int(on[0]) | int(on[1]) << 1 | int(on[2]) << 2


def _masked_cost(costs: np.ndarray, levels: np.ndarray, planes: int) -> float:
    mapped, base = _plane_costs(costs, levels), costs[..., 0].sum((1, 2))
    return float(sum(mapped[p] if planes >> p & 1 else base[p] for p in range(3)))


def _keep_planes(out: Frame, decoded: Frame, planes: int) -> Frame:
    """``out`` with the planes not in the mask taken from ``decoded``."""
    if planes == codec.ALL_PLANES:
        return out
    return out.with_planes(*(o if planes >> p & 1 else d for p, (o, d) in enumerate(zip(out.planes, decoded.planes))))


def _block_sum(a: np.ndarray, size: int, rows: int, cols: int) -> np.ndarray:
    h, w = a.shape
    padded = np.zeros((rows * size, cols * size))
    padded[:h, :w] = a
    return padded.reshape(rows, size, cols, size).sum((1, 3))


def _cell_sd(y: np.ndarray) -> np.ndarray:
    """Standard deviation of each 8x8 luma cell (edge cells padded by replication)."""
    h, w = y.shape
    a = np.pad(y.astype(np.float64), ((0, -h % 8), (0, -w % 8)), mode="edge")
    cells = a.reshape(a.shape[0] // 8, 8, a.shape[1] // 8, 8)
    return cells.std((1, 3))
