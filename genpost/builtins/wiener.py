"""``wiener``: an RD-optimised ALF-class loop filter for streams that lack one (x265/HEVC).

The encoder fits VVC-style adaptive loop filters from the decoded frames towards the source and sends them
as side info (the payload, specified in ``wiener_alf`` and ``wiener_chroma``): luma filters for 25
gradient classes merged into up to 8, with geometric transforms and non-linear clipping; a chroma filter per
chroma plane, in a period set up to 4 alternatives chosen per block by a coded map (``wiener_alts``); a
cross-component filter per chroma plane refining it from luma; a cross-chroma filter per chroma plane
refining it from the other chroma plane; and per-CTU on/off flags for each part. A chroma plane's parts are
summed unrounded and rounded once. The payload's first 4 bits are its version: 5 a filter set (2 when it
has no chroma part), 3 a frame's reference to the period's set; any other is a ``PayloadError``.

Period sets (APS-like): ``adapt`` fits one set on the period's sampled frames (keyframe to keyframe) and
sends it once as ``wiener/1+update`` when, charged with its record, it pays over the period's frames on
every plane (below) and the keyframe would take it; frames then reference it with a version-3 payload (a
tag, per part on/off and CTU flags: 3 bytes when all is on), which extends as one record while it stays the
same. A set's chroma filters (ALF, CC-ALF, cross-chroma) are also fitted jointly (``wiener_joint``, version
2.2), and the joint fit replaces the one fitted in turn where it costs less (each judged as a whole: the
best subset of its parts). Then each chroma plane tries ALF alternatives (``wiener_alts``) and keeps them
where they cost less at ``alternatives * lambda`` (option ``wiener.alternatives``, 10; 0 turns them off).

The rule every record keeps (``genpost.rdcost``, the learned plugins' too): it is sent only where, for
every plane, that plane's SSE gain pays for ALL of the record's bits at that plane's own lambda
(``plane_lambdas``: from the plane's SSE and ``ctx.base_bits``, the base's bits per frame; without them HM's
lambda for every plane), so no plane's BD-rate rises. A chroma gain that pays at chroma's lambda does not
buy bits that luma must pay for, and a record that gains nothing on one plane is never sent. A set is
charged its update record and its keyframe's reference record against its gain over the period (the
sample's, scaled); a frame's new record is charged as below.

Choice per frame, by ``genpost.rdcost.pick`` among candidates (per-plane SSE, bits charged), with
``lambda = ctx.lagrangian * lambda_scale`` (option ``wiener.lambda_scale``, which also scales the planes'
lambdas) for the fit:

* reuse: ``ctx.previous_payload`` (the payload in force), applied with the decoder's own function;
  returning those same bytes extends its record at no cost (0 bits). It is only a candidate when it makes
  no plane worse than the decoded frame;
* off: ``b""`` (ends the run), 0 bits;
* reference (a period set in force): payload bits + ``ctx.record_overhead_bits``, times ``share``;
* new: the same, for the frame's own set. Two are tried: the RD-best choices, and one without CTU flags
  (tied to one frame's content, so it tends to stay right on later frames). ``share`` is ``1 /
  record_frames`` (option ``wiener.record_frames``, the frames a new payload is expected to serve through
  reuse) unless a payload is in force (then 1: replacing it must pay on this frame); with a period set in
  force a frame's own set always pays in full on this frame. Every rate term of the fit (which parts,
  flags, coefficients) uses ``lambda / record_frames``.

Among candidates that pay on every plane the largest 6:1:1-weighted margin wins; ties go to reuse, then
off. Each part is on only where it lowers ``SSE + lambda * bits`` of its own plane, so no plane gets worse
on a frame that starts a record. ``restore`` raises ``PayloadError`` for any
payload it cannot use (a version-3 payload without its set, or naming another), and for frames that are
not 4:2:0 or whose size differs from ``ctx.stream``. Option ``wiener.period_sets=0`` sends no sets.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .. import options as opt
from ..postprocessor import Context, PayloadError, PostProcessor
from ..rdcost import pays, pick, plane_lambdas
from ..types import Frame
from .wiener_alf import (
    VERSION_REF,
    VERSIONS,
    Part,
    Payload,
    apply_payload,
    luma_delta,
    masked,
    parts_of,
    read_payload,
    read_ref,
    read_update,
    update_tag,
    write_payload,
    write_ref,
)
from .wiener_alts import improve_alternatives
from .wiener_bits import BitReader
from .wiener_chroma import alf_acc, cc_acc, xc_acc
from .wiener_fit import Fit, ctu_sse, fit_cc, fit_chroma, fit_luma, fit_period, fit_xc, lifted
from .wiener_joint import choose_parts, improve_period

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


def restore_planes(planes, payload: bytes, bit_depth: int, update: bytes | None = None) -> list[np.ndarray]:
    """Decode a payload and filter the planes (the normative decoder). ``update``: the period's filter set
    in force (``wiener/1+update``), which version-3 payloads reference. PayloadError for a version other
    than ``VERSIONS`` (the frame keeps its base decode) and for anything malformed."""
    if len(payload) > MAX_PAYLOAD or (update is not None and len(update) > MAX_PAYLOAD):
        raise PayloadError(f"wiener: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    version = BitReader(payload).u(4)
    if version not in VERSIONS:
        raise PayloadError(f"wiener: unsupported payload version {version}")
    return apply_payload(planes, _parse(bytes(payload), None if update is None else bytes(update), planes[0].shape), bit_depth)


@functools.lru_cache(maxsize=16)
def _parse(payload: bytes, update: bytes | None, shape: tuple[int, int]) -> Payload:
    """The parsed payload (cached: a record's payload repeats over the frames of its run; nothing mutates
    a parsed payload). Errors are not cached; they raise again on the next call."""
    rd = BitReader(payload)
    version = rd.u(4)
    if version == VERSION_REF:
        return read_ref(rd, update, shape)
    return read_payload(rd, shape, version)


def frame_payloads(source: Frame, decoded: Frame, lam: float, xc: bool = True) -> list[tuple[list[float], bytes]]:
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
        sse, alf_parts, cc_parts, xc_parts = [float(luma_sse.sum())], [], [], []
        for plane, (c, s, fit) in enumerate(zip((u, v), src[1:], chroma)):
            _, part, _ = fit.decide(lam, allow_flags)
            key = (plane, part is None, None if part is None or part.flags is None else part.flags.tobytes())
            if key not in cc_fits:  # CC-ALF refines the chroma ALF output in force
                base = lifted(c)
                if part is not None:
                    base = base + masked(fit.delta.copy(), part.flags, ctu // 2)
                cc_fits[key] = (base, fit_cc(y, base, s, bd, lam, ctu // 2, big=xc))
            base, cc_fit = cc_fits[key]
            _, cc_part, cc_sse = cc_fit.decide(lam, allow_flags)
            if cc_part is not None:  # the cross-chroma filter refines what ALF and CC-ALF leave
                base = base + masked(cc_fit.delta.copy(), cc_part.flags, ctu // 2)
            xc_fit = fit_xc(decoded.planes[2 - plane], base, s, bd, lam, ctu // 2) if xc else None
            xc_part = None
            if xc_fit is not None:
                _, xc_part, cc_sse = xc_fit.decide(lam, allow_flags)
            alf_parts.append(part)
            cc_parts.append(cc_part)
            xc_parts.append(xc_part)
            sse.append(float(cc_sse.sum()))
        payload = Payload(ctu.bit_length() - 1, luma_part, alf_parts, cc_parts, xc_parts)
        if luma_part is not None or any(alf_parts) or any(cc_parts) or any(xc_parts):
            out.append((sse, write_payload(payload).tobytes()))
    return out


def reference_payloads(source: Frame, decoded: Frame, update: bytes, lam: float) -> list[tuple[list[float], bytes]]:
    """Version-3 candidates (this frame uses the period's set ``update``) as (per-plane SSE, bytes): per
    part on/off and CTU flags by ``SSE + lam * bits`` (a chroma plane's parts judged together,
    ``wiener_joint.choose_parts``), then the same without CTU flags."""
    bd = decoded.bit_depth
    maxv = (1 << bd) - 1
    upl = read_update(update, decoded.y.shape)
    ctu = 1 << upl.ctu_log2
    y = decoded.planes[0]
    src = [p.astype(np.int32) for p in source.planes]
    have = parts_of(upl)
    luma_fit = None
    if have[0] is not None:
        d = luma_delta(y, have[0].filt, bd)
        luma_fit = Fit(have[0].filt, ctu_sse(np.clip(y + d, 0, maxv), src[0], ctu), ctu_sse(y, src[0], ctu), 0, d)
    deltas = {i: part_sums(y, c, decoded.planes[2 - i], have[1 + 3 * i: 4 + 3 * i], bd)
              for i, c in enumerate(decoded.planes[1:])}
    out = []
    for allow in (True, False):
        parts, sse = [None] * 7, []
        if luma_fit is not None:
            _, parts[0], grid_sse = luma_fit.decide(lam, allow)
            sse.append(float(grid_sse.sum()))
        else:
            sse.append(_plane_sse(y, source.planes[0]))
        for i, c in enumerate(decoded.planes[1:]):
            filters = [p and p.filt for p in have[1 + 3 * i: 4 + 3 * i]]
            parts[1 + 3 * i: 4 + 3 * i], cur = choose_parts(c, src[1 + i], deltas[i], filters, lam, ctu // 2, allow, bd)
            sse.append(float(cur.sum()))
        if any(p is not None for p in parts):
            out.append((sse, write_ref(upl, update_tag(update), parts).tobytes()))
    return out


def part_sums(y, c, other, parts, bit_depth: int) -> list:
    """A chroma plane's [ALF, CC, cross-chroma] unrounded sums in 2^-8 units (None where a part is absent)."""
    alf, cc, xc = parts
    return [alf and alf_acc(c, alf.filt, bit_depth), cc and cc_acc(y, c.shape, cc.filt),
            xc and xc_acc(other, xc.filt, bit_depth)]


class WienerFilter(PostProcessor):
    """VVC-style adaptive loop filter (classified luma, chroma, cross-component; per-CTU flags)."""

    name = "wiener"
    version = "2.4"
    side_info = "wiener/1"
    description = "RD-optimised ALF-class loop filter (25 luma classes, clipping, chroma alternatives, CC-ALF, cross-chroma, CTU flags, period sets)"
    default_mode = False  # restore without a payload is the base: no payload means the encoder chose off
    # every option wiener reads, declared once (read through ``_option``: an undeclared key is a KeyError)
    options = (
        opt.number("lambda_scale", "1.0", 0.0, 1e12, "encoder: multiplier on HM's lambda"),
        # best of 1, 8, 16, 32 measured
        opt.number("record_frames", "8.0", 1.0, 1000.0, "encoder: frames a new filter set is charged over"),
        # 1, 3, 5, 10, 30 measured
        opt.number("alternatives", "10", 0.0, 1e6, "encoder: lambda multiplier for chroma ALF alternatives (0: none)"),
        opt.integer("period_sets", "1", 0, 1, "encoder: 1 sends a period's filter set where it pays, 0 never"),
    )

    @classmethod
    def _option(cls, ctx: Context, key: str) -> float:
        return float(ctx.value("wiener", opt.by_name(cls.options)[key]))

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        _check_frame(decoded, ctx)
        for x, s in zip(decoded.planes, source.planes):
            if x.shape != s.shape:
                raise ValueError(f"wiener: source plane {s.shape} != decoded plane {x.shape}")
        scale = self._option(ctx, "lambda_scale")
        frames = self._option(ctx, "record_frames")
        lam = ctx.lagrangian * scale
        overhead = max(0, int(ctx.record_overhead_bits))
        off = np.array([_plane_sse(x, s) for x, s in zip(decoded.planes, source.planes)])
        lambdas = plane_lambdas(off, ctx.base_bits, ctx.lagrangian) * scale
        # (per-plane SSE, bits charged, payload); on equal merit the earlier wins: reuse, off, new
        candidates: list[tuple[np.ndarray, float, bytes]] = []
        if ctx.previous_payload:
            try:
                planes = restore_planes(decoded.planes, ctx.previous_payload, decoded.bit_depth, ctx.update)
            except PayloadError:  # not usable on this frame: only off and new remain
                pass
            else:
                sse = np.array([_plane_sse(o, s) for o, s in zip(planes, source.planes)])
                if np.all(sse <= off):
                    candidates.append((sse, 0.0, ctx.previous_payload))
        candidates.append((off, 0.0, b""))
        # a new set's bits are spread over the frames it will serve, but replacing a set in force must
        # pay on this frame: its edge over the old set is largest here, where it was fitted
        share = 1.0 if len(candidates) == 2 else 1.0 / frames
        new = []
        if ctx.update:
            try:
                new = reference_payloads(source, decoded, ctx.update, lam / frames)
            except PayloadError:
                new = []
        for d, payload in new:
            candidates.append((np.asarray(d), share * (8 * len(payload) + overhead), payload))
        # with the period's set in force, a frame's own set must pay on this frame alone
        own_share = 1.0 if new else share
        for d, payload in frame_payloads(source, decoded, lam / frames):
            if len(payload) <= MAX_PAYLOAD:
                candidates.append((np.asarray(d), own_share * (8 * len(payload) + overhead), payload))
        return pick(candidates, off, lambdas)

    def adapt(self, pairs, ctx: Context) -> bytes:
        """The period's filter set (APS-like, sent once at the period's first frame as ``wiener/1+update``,
        referenced by version-3 frame payloads): fitted on the sample ``pairs`` and charged, with its record
        overhead and its keyframe's reference record, against the SSE it saves over the
        ``ctx.period_frames`` frames it serves (each sample stands for ``period_frames / len(pairs)`` of
        them), on every plane at that plane's lambda (``genpost.rdcost.pays``). ``b""`` when it does not
        pay on every plane, when the keyframe's own choice (``analyze``) would not reference it, or with
        option ``wiener.period_sets=0``."""
        if not pairs or not self._option(ctx, "period_sets"):
            return b""
        for source, decoded in pairs:
            _check_frame(decoded, ctx)
            if any(x.shape != s.shape for x, s in zip(decoded.planes, source.planes)):
                raise ValueError("wiener: source and decoded planes differ in shape")
        lam = ctx.lagrangian * self._option(ctx, "lambda_scale")
        weight = max(int(ctx.period_frames), len(pairs)) / len(pairs)
        decoded0 = pairs[0][1]
        ctu = 128 if decoded0.y.size >= 1920 * 1080 else 64
        luma, chroma, sums = fit_period(pairs, decoded0.bit_depth, lam / weight, ctu)
        chroma, sums = improve_period(pairs, chroma, sums, decoded0.bit_depth, lam / weight, ctu // 2)
        if alt_scale := self._option(ctx, "alternatives"):
            chroma, sums = improve_alternatives(pairs, chroma, sums, decoded0.bit_depth, lam / weight, alt_scale)
        pl = Payload(ctu.bit_length() - 1, luma, chroma[0::3], chroma[1::3], chroma[2::3])
        parts = parts_of(pl)
        if all(p is None for p in parts):
            return b""
        payload = write_payload(pl).tobytes()
        reference = write_ref(pl, update_tag(payload), [None if p is None else Part(p.filt) for p in parts])
        # the update's record and the first frame's (which shares its block: ~5 bytes of record fields)
        bits = 8 * len(payload) + max(0, int(ctx.record_overhead_bits)) + 8 * (5 + len(reference.tobytes()))
        on, off = np.array([a for a, _ in sums]) * weight, np.array([b for _, b in sums]) * weight
        base_bits = ctx.base_bits * weight * len(pairs) if ctx.base_bits else None  # the period's
        if not pays(on, bits, off, plane_lambdas(off, base_bits, ctx.lagrangian) * self._option(ctx, "lambda_scale")):
            return b""
        # the first frame (the period's keyframe) must take it, by the choice ``analyze`` makes there: an
        # update its frames would not use is wasted
        first = dataclasses.replace(ctx, update=payload, previous_payload=None)
        chosen = self.analyze(pairs[0][0], decoded0, first)
        if not chosen or BitReader(chosen).u(4) != VERSION_REF:
            return b""
        return payload

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if not payload:
            return decoded
        if len(payload) > MAX_PAYLOAD:
            raise PayloadError(f"wiener: payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        _check_frame(decoded, ctx)
        return decoded.with_planes(*restore_planes(decoded.planes, payload, decoded.bit_depth, ctx.update))
