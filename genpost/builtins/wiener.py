"""``wiener``: an RD-optimised ALF-class loop filter for streams that lack one (x265/HEVC).

The encoder fits, per frame, VVC-style adaptive loop filters from the decoded frame towards the
source and sends them as side info (payload version 2, specified in ``wiener_alf``): luma filters for
25 gradient classes merged into up to 8, with geometric transforms and non-linear clipping; one
chroma filter per chroma plane; a cross-component filter per chroma plane refining it from luma; and
per-CTU on/off flags for each of the five. Version-1 payloads (``wiener_v1``, one diamond per plane)
still decode. The format id stays ``wiener/1``: the payload's first 4 bits are its version.

Choice per frame, by ``J = SSE (Y+U+V) + lambda * bits`` with ``lambda = ctx.lagrangian *
lambda_scale`` (option ``wiener.lambda_scale``):

* reuse: ``ctx.previous_payload`` (the payload in force), applied with the decoder's own function;
  returning those same bytes extends its record at no cost, ``J = SSE_reuse``. It is only a candidate
  when it makes no plane worse than the decoded frame;
* off: ``b""`` (ends the run), ``J = SSE_decoded``;
* new: ``J = SSE_new + lambda * (payload bits + ctx.record_overhead_bits) / record_frames``. Two are
  tried: the RD-best choices, and one without CTU flags (tied to one frame's content, so it tends to
  stay right on later frames). ``record_frames`` (option ``wiener.record_frames``) is the number of
  frames a new filter set is expected to serve through reuse: its bits are charged over them, and
  every rate term of the fit (which components, flags, coefficients) uses the same amortised lambda.

Ties go to reuse, then off. Each component is on only where it lowers ``SSE + lambda * bits`` of its
own plane, so no plane gets worse on a frame that starts a record. ``restore`` raises
``PayloadError`` for any payload it cannot use, and for frames that are not 4:2:0 or whose size
differs from ``ctx.stream``.
"""

from __future__ import annotations

import numpy as np

from .. import options as opt
from ..postprocessor import Context, PayloadError, PostProcessor
from ..types import Frame
from .wiener_alf import PayloadV2, apply_v2, masked, read_v2, write_v2
from .wiener_bits import BitReader
from .wiener_fit import fit_cc, fit_chroma, fit_luma
from .wiener_v1 import restore_v1

MAX_PAYLOAD = 1 << 16  # bytes; far above any real payload


def _check_frame(frame: Frame, ctx: Context | None) -> None:
    h, w = frame.y.shape
    if h == 0 or w == 0:
        raise PayloadError("wiener: empty frame")
    if not 1 <= frame.bit_depth <= 16:
        raise PayloadError(f"wiener: unsupported bit depth {frame.bit_depth}")
    if any(p.dtype not in (np.uint8, np.uint16) or p.dtype != frame.y.dtype or p.ndim != 2 for p in frame.planes):
        raise PayloadError("wiener: planes must be 2-D uint8 or uint16 of one dtype")
    for c in (frame.u, frame.v):
        if c.shape != ((h + 1) // 2, (w + 1) // 2):
            raise PayloadError(f"wiener: chroma plane {c.shape} does not match 4:2:0 luma {frame.y.shape}")
    stream = getattr(ctx, "stream", None)
    if stream is not None and (stream.width, stream.height) != (w, h):
        raise PayloadError(f"wiener: frame is {w}x{h} but the stream is {stream.width}x{stream.height}")


def _plane_sse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.int64) - b
    return float(np.einsum("ij,ij->", d, d))


def restore_planes(planes, payload: bytes, bit_depth: int) -> list[np.ndarray]:
    """Decode any supported payload version and filter the planes (the normative decoder)."""
    if len(payload) > MAX_PAYLOAD:
        raise PayloadError(f"wiener: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    rd = BitReader(payload)
    version = rd.u(4)
    if version == 1:
        return restore_v1(rd, planes, (1 << bit_depth) - 1)
    if version == 2:
        return apply_v2(planes, read_v2(rd, planes[0].shape), bit_depth)
    raise PayloadError(f"wiener: unsupported payload version {version}")


def frame_payloads(source: Frame, decoded: Frame, lam: float) -> list[tuple[list[float], bytes]]:
    """New-payload candidates as (per-plane SSE, bytes): the RD-best, then one without CTU flags.

    ``lam`` already includes any amortisation; an all-off candidate is dropped (that is ``b""``)."""
    bd = decoded.bit_depth
    y, u, v = decoded.planes
    src = [p.astype(np.int32) for p in source.planes]
    ctu = 128 if y.size >= 1920 * 1080 else 64
    luma = fit_luma(y, src[0], bd, lam, ctu, candidates=1 if y.size > 500_000 else 2)
    chroma = [fit_chroma(c, s, bd, lam, ctu // 2) for c, s in zip((u, v), src[1:])]
    out, cc_fits = [], {}
    for allow_flags in (True, False):
        _, luma_part, luma_sse = luma.decide(lam, allow_flags)
        sse, alf_parts, cc_parts = [float(luma_sse.sum())], [], []
        for plane, (c, s, fit) in enumerate(zip((u, v), src[1:], chroma)):
            _, part, _ = fit.decide(lam, allow_flags)
            key = (plane, part is None, None if part is None or part.flags is None else part.flags.tobytes())
            if key not in cc_fits:  # CC-ALF refines the chroma ALF output in force
                base = c.astype(np.int32)
                if part is not None:
                    base = base + masked(fit.delta.copy(), part.flags, ctu // 2)
                cc_fits[key] = fit_cc(y, base, s, bd, lam, ctu // 2)
            _, cc_part, cc_sse = cc_fits[key].decide(lam, allow_flags)
            alf_parts.append(part)
            cc_parts.append(cc_part)
            sse.append(float(cc_sse.sum()))
        payload = PayloadV2(ctu.bit_length() - 1, luma_part, alf_parts, cc_parts)
        if luma_part is not None or any(alf_parts) or any(cc_parts):
            out.append((sse, write_v2(payload).tobytes()))
    return out


class WienerFilter(PostProcessor):
    """VVC-style adaptive loop filter (classified luma, chroma, cross-component; per-CTU flags)."""

    name = "wiener"
    version = "2.0"
    side_info = "wiener/1"
    description = "RD-optimised ALF-class loop filter (25 luma classes, clipping, chroma, CC-ALF, CTU flags)"
    default_mode = False  # restore without a payload is the base: no payload means the encoder chose off
    lambda_scale = 1.0  # times ctx.lagrangian (HM); option wiener.lambda_scale
    record_frames = 8.0  # frames a new set is charged over (best of 1, 8, 16, 32 measured); wiener.record_frames
    options = (
        opt.number("lambda_scale", "1.0", 0.0, 1e12, "encoder: multiplier on HM's lambda"),
        opt.number("record_frames", "8.0", 1.0, 1000.0, "encoder: frames a new filter set is charged over"),
    )

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        _check_frame(decoded, ctx)
        for x, s in zip(decoded.planes, source.planes):
            if x.shape != s.shape:
                raise ValueError(f"wiener: source plane {s.shape} != decoded plane {x.shape}")
        scale = ctx.number("wiener", "lambda_scale", str(self.lambda_scale), 0.0, 1e12)
        frames = ctx.number("wiener", "record_frames", str(self.record_frames), 1.0, 1000.0)
        lam = ctx.lagrangian * scale
        overhead = max(0, int(ctx.record_overhead_bits))
        off = [_plane_sse(x, s) for x, s in zip(decoded.planes, source.planes)]
        candidates = []  # (J, payload); on equal cost the earlier wins: reuse, off, new
        if ctx.previous_payload:
            try:
                planes = restore_planes(decoded.planes, ctx.previous_payload, decoded.bit_depth)
            except PayloadError:  # not usable on this frame: only off and new remain
                pass
            else:
                sse = [_plane_sse(o, s) for o, s in zip(planes, source.planes)]
                if all(a <= b for a, b in zip(sse, off)):
                    candidates.append((sum(sse), ctx.previous_payload))
        candidates.append((sum(off), b""))
        # a new set's bits are spread over the frames it will serve, but replacing a set in force must
        # pay on this frame: its edge over the old set is largest here, where it was fitted
        rate = lam if len(candidates) == 2 else lam / frames
        for sse, payload in frame_payloads(source, decoded, lam / frames):
            if len(payload) <= MAX_PAYLOAD:
                candidates.append((sum(sse) + rate * (8 * len(payload) + overhead), payload))
        return min(candidates, key=lambda c: c[0])[1]

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if not payload:
            return decoded
        if len(payload) > MAX_PAYLOAD:
            raise PayloadError(f"wiener: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        _check_frame(decoded, ctx)
        return decoded.with_planes(*restore_planes(decoded.planes, payload, decoded.bit_depth))
