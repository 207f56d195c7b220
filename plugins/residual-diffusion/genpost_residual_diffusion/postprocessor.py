"""``residual-diffusion``: the encoder sends a tiny learned latent of the coding residual (4 channels on the
1/8 luma grid, quantised with a per-frame step chosen by D + lambda * R, ANS coded); the decoder's small
conditional diffusion model generates the residual from the decoded frame and that latent (one-step
posterior mean by default, or DDIM in up to 8 seeded steps) and adds it. Without side info it runs as a
plain conditional one-step denoiser (latent absent)."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from genpost import Context, Frame, PayloadError, PostProcessor, WeightsFile
from genpost.modeling import pack, to_samples, unpack

from . import codec
from .layout import LATENT, RS, encoder_input, grid, upsample

WHO = "residual-diffusion"
# absolute: genpost.weights resolves a relative path against the module of the instance's class, which
# for a subclass defined elsewhere (the contract kit's tracer) is not this package
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# sha256 of the shipped weights (weights/training.json lists the same)
SHA256 = {
    "latent_encoder_v1.onnx": "0a77b3a7f94352800884262b309a9ecf90a68f8f61de04113300d2270d435a2f",
    "latent_encoder_v1.safetensors": "ce57aea932128ae06d2cdfec72f7d00d65620289eafd432698c3fb6d0a1fdee9",
    "residual_denoiser_v1.onnx": "6ae78fb918a18289b42709fc532bf96f8607092d89bd1772841b54eb8742572d",
    "residual_denoiser_v1.safetensors": "e29f7442eca9d0c335fe5a094b339a6636f652e1557f2a51732b65fd704970ff",
}
DEFAULTS = {
    "steps": "0",  # 0: one-step posterior mean (default, deterministic); 1..8: DDIM steps from seeded noise
    "seed": "0",  # DDIM noise seed (with the frame index); unused at steps 0
    "qp": "32",  # the QP the denoiser is conditioned on without side info (a decoder rarely knows it)
    "backend": "onnx",  # onnx | torch (falls back to the other when its runtime is missing)
    "lambda_scale": "1.0",  # encoder: multiplier on ctx.lagrangian
}


def _number(ctx: Context, key: str, lo: float, hi: float, integer: bool = False) -> float:
    return ctx.number(WHO, key, DEFAULTS[key], lo, hi, integer)


def sse(a: Frame, b: Frame) -> float:
    """Squared error over Y, U and V at the frames' bit depth (the RD distortion)."""
    return float(sum(np.sum((x.astype(np.int64) - y) ** 2) for x, y in zip(a.planes, b.planes, strict=True)))


class ResidualDiffusion(PostProcessor):
    name = "residual-diffusion"
    version = "1.0.0"
    api_version = 1
    side_info = "residual-diffusion/1"
    description = "learned residual latent (1/8 grid, ANS, RD-chosen step) + conditional diffusion decoder (one-step default)"
    weights = tuple(WeightsFile(str(WEIGHTS_DIR / name), digest) for name, digest in SHA256.items())

    def __init__(self):
        self._device = "cpu"
        self._nets: dict[str, object] = {}
        self._frame_key = None
        self._cache: dict[tuple, np.ndarray] = {}  # per (qp, payload) for the current frame

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

    def _restored(self, frame: Frame, qp: int, latent: np.ndarray | None, key: bytes, ctx: Context) -> Frame:
        """``frame`` plus the residual the denoiser generates from it and ``latent`` (None: absent)."""
        from .engine import sample

        net = self._net("denoiser", ctx.option(WHO, "backend", DEFAULTS["backend"]))
        steps, seed = _number(ctx, "steps", 0, 8, True), _number(ctx, "seed", 0, 2**32 - 1, True)
        frame_key = (net.backend, frame.index, frame.bit_depth, frame.y.shape, *(zlib.crc32(p.tobytes()) for p in frame.planes))
        if frame_key != self._frame_key:
            self._frame_key, self._cache = frame_key, {}
        ckey = (qp, key, steps, seed)
        if ckey not in self._cache:
            decoded = pack(frame.y, frame.u, frame.v, frame.max_value, qp)
            h, w = decoded.shape[1:]
            cond = np.zeros((7 + LATENT + 1, h, w), np.float32)
            cond[:7] = decoded
            if latent is not None:
                cond[7 : 7 + LATENT] = upsample(latent, h, w)
                cond[7 + LATENT] = 1.0
            noise = None
            if steps:  # the noise depends on the seed and the frame index only: bit-exact on repeat
                noise = np.random.default_rng([seed, frame.index & 0xFFFFFFFF]).standard_normal((6, h, w), np.float32)
            self._cache[ckey] = decoded[:6] + sample(net, cond, steps, noise) / np.float32(RS)
        y, u, v = unpack(self._cache[ckey], frame.height, frame.width)
        return frame.with_planes(*(to_samples(p, frame.max_value, frame.dtype) for p in (y, u, v)))

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if payload is None:
            return self._restored(decoded, _number(ctx, "qp", 0, 63, True), None, b"", ctx)
        rows, cols = grid(*decoded.u.shape)
        qp, step, q = codec.decode(bytes(payload), rows, cols)
        return self._restored(decoded, qp, q.astype(np.float32) * np.float32(codec.STEPS[step]), bytes(payload), ctx)

    # ---------------------------------------------------------------- encoder

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """The payload with the least J = D + lambda * R among: nothing (the default mode, 0 bits), the payload
        in force (0 bits), a latent-free payload that only sends the QP, and the latent quantised at every step
        of codec.STEPS. D = SSE over Y, U and V at the stream's bit depth, of what ``restore`` gives; R of a
        new payload = ctx.record_overhead_bits + 8 * its bytes; lambda = ctx.lagrangian * lambda_scale."""
        lam = ctx.lagrangian * _number(ctx, "lambda_scale", 0.0, 1e6)
        qp = min(max(int(ctx.qp), 0), 63) if ctx.qp is not None else _number(ctx, "qp", 0, 63, True)
        candidates = [(sse(source, self.restore(decoded, None, ctx)), b"")]
        if ctx.previous_payload:
            try:
                candidates.insert(0, (sse(source, self.restore(decoded, ctx.previous_payload, ctx)), ctx.previous_payload))
            except PayloadError:
                pass
        src = pack(source.y, source.u, source.v, source.max_value)
        dec = pack(decoded.y, decoded.u, decoded.v, decoded.max_value)
        y = self._net("encoder", ctx.option(WHO, "backend", DEFAULTS["backend"]))(encoder_input(src, dec, qp))
        tried = set()
        for step in (None, *range(len(codec.STEPS))):
            q = np.zeros(y.shape, np.int32) if step is None else codec.quantise(y, step)
            payload = codec.encode(qp, step or 0, q)
            if payload in tried:
                continue
            tried.add(payload)
            bits = ctx.record_overhead_bits + 8 * len(payload)
            candidates.append((sse(source, self.restore(decoded, payload, ctx)) + lam * bits, payload))
        return min(candidates, key=lambda c: c[0])[1]  # ties: the earlier (cheaper) candidate
