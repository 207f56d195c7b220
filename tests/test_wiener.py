"""WienerFilter on real carphone frames degraded by a real x265 encode (PyAV libx265)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from genpost import Context, Frame, PayloadError, StreamInfo
from genpost.builtins.wiener import WienerFilter
from genpost.builtins.wiener_alf import LumaSet, Part, Payload, write_payload

av = pytest.importorskip("av")
Y4M = Path(__file__).parent / "data" / "carphone_176x144_29.97.y4m"
N_FRAMES = 3


def read_y4m(path: Path, n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Minimal 8-bit 4:2:0 y4m reader."""
    data = path.read_bytes()
    header, pos = data[: data.index(b"\n")].split(), data.index(b"\n") + 1
    w = int(next(t[1:] for t in header if t.startswith(b"W")))
    h = int(next(t[1:] for t in header if t.startswith(b"H")))
    cw, ch = (w + 1) // 2, (h + 1) // 2
    frames = []
    for _ in range(n):
        pos = data.index(b"\n", pos) + 1  # skip "FRAME..." line
        buf = np.frombuffer(data, np.uint8, w * h + 2 * cw * ch, pos)
        pos += buf.size
        frames.append((buf[: w * h].reshape(h, w), buf[w * h: w * h + cw * ch].reshape(ch, cw),
                       buf[w * h + cw * ch:].reshape(ch, cw)))
    return frames


def x265(frames, qp: int, ten_bit: bool = False):
    """Encode with libx265 and decode again; returns the decoded planes in presentation order."""
    if "libx265" not in av.codecs_available:
        pytest.skip("PyAV without libx265")
    fmt, dt = ("yuv420p10le", np.dtype("<u2")) if ten_bit else ("yuv420p", np.dtype(np.uint8))
    h, w = frames[0][0].shape
    enc = av.CodecContext.create("libx265", "w")
    enc.width, enc.height, enc.pix_fmt = w, h, fmt
    enc.time_base, enc.framerate = Fraction(1, 25), Fraction(25)
    enc.options = {"preset": "medium", "qp": str(qp), "x265-params": "log-level=error:info=0"}
    packets = []
    for i, planes in enumerate(frames):
        vf = av.VideoFrame(w, h, fmt)
        for plane, arr in zip(vf.planes, planes):
            buf = np.zeros((arr.shape[0], plane.line_size // dt.itemsize), dt)
            buf[:, : arr.shape[1]] = arr
            plane.update(buf.tobytes()[: plane.buffer_size])
        vf.pts = i
        packets += enc.encode(vf)
    packets += enc.encode(None)
    dec = av.CodecContext.create("hevc", "r")
    out = [f for p in packets + [None] for f in dec.decode(p)]
    out.sort(key=lambda f: f.pts)
    result = []
    for f, src in zip(out, frames):
        result.append(tuple(np.frombuffer(p, dt).reshape(-1, p.line_size // dt.itemsize)[: s.shape[0], : s.shape[1]]
                            .astype(s.dtype) for p, s in zip(f.planes, src)))
    assert len(result) == len(frames)
    return result


BASE_BITS = 1e5  # bits per frame of the base in these tests: large enough that filters pay on every plane


def ctx_for(frame: Frame, qp: int = 37, **options: str) -> Context:
    return Context(stream=StreamInfo(frame.width, frame.height, frame.bit_depth, "hevc", None, None), qp=qp,
                   options={f"wiener.{k}": v for k, v in options.items()}, base_bits=BASE_BITS)


def psnr(a: np.ndarray, b: np.ndarray, peak: int) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(peak**2 / mse))


@pytest.fixture(scope="module")
def pairs():
    src = read_y4m(Y4M, N_FRAMES)
    dec = x265(src, 37)
    return [(Frame(*s, index=i, pts=1001 * i, time_base=Fraction(1, 30000)),
             Frame(*d, index=i, pts=1001 * i, time_base=Fraction(1, 30000))) for i, (s, d) in enumerate(zip(src, dec))]


@pytest.fixture(scope="module")
def payloads(pairs):
    wf = WienerFilter()
    return [wf.analyze(s, d, ctx_for(d)) for s, d in pairs]


def test_raises_psnr_y(pairs, payloads):
    wf, gains = WienerFilter(), []
    for (src, dec), payload in zip(pairs, payloads):
        out = wf.restore(dec, payload, ctx_for(dec))
        gains.append(psnr(out.y, src.y, 255) - psnr(dec.y, src.y, 255))
        for o, d, s in zip(out.planes, dec.planes, src.planes):  # RD never makes a plane worse
            assert psnr(o, s, 255) >= psnr(d, s, 255) - 1e-9
    assert sum(map(len, payloads)) > 0
    assert np.mean(gains) > 0.03, gains


def test_restore_keeps_metadata(pairs, payloads):
    dec, payload = pairs[1][1], payloads[1]
    out = WienerFilter().restore(dec, payload, ctx_for(dec))
    assert (out.index, out.pts, out.time_base, out.bit_depth) == (dec.index, dec.pts, dec.time_base, dec.bit_depth)
    assert [p.shape for p in out.planes] == [p.shape for p in dec.planes]
    assert all(p.dtype == np.uint8 for p in out.planes)


def test_no_payload_is_identity(pairs):
    dec = pairs[0][1]
    wf = WienerFilter()
    assert wf.restore(dec, None, ctx_for(dec)) is dec
    assert wf.restore(dec, b"", ctx_for(dec)) is dec


def test_deterministic_round_trip(pairs, payloads):
    src, dec = pairs[1]
    wf = WienerFilter()
    assert wf.analyze(src, dec, ctx_for(dec)) == payloads[1]
    a, b = wf.restore(dec, payloads[1], ctx_for(dec)), WienerFilter().restore(dec, payloads[1], ctx_for(dec))
    assert all(np.array_equal(x, y) for x, y in zip(a.planes, b.planes))


def _restore_or_payload_error(dec: Frame, payload: bytes) -> None:
    try:
        out = WienerFilter().restore(dec, payload, ctx_for(dec))
    except PayloadError:
        return
    assert [(p.shape, p.dtype) for p in out.planes] == [(p.shape, p.dtype) for p in dec.planes]


def test_truncations_and_bit_flips(pairs, payloads):
    dec, payload = pairs[1][1], max(payloads, key=len)
    assert payload
    for n in range(1, len(payload)):
        _restore_or_payload_error(dec, payload[:n])
    rng = np.random.default_rng(0)
    for _ in range(300):
        bits = np.unpackbits(np.frombuffer(payload, np.uint8))
        bits[rng.choice(bits.size, size=rng.integers(1, 4), replace=False)] ^= 1
        _restore_or_payload_error(dec, np.packbits(bits).tobytes())
    for junk in (rng.bytes(1), rng.bytes(7), rng.bytes(64), payload + b"\x00", payload + b"\xff"):
        _restore_or_payload_error(dec, junk)


def test_malformed_payloads_raise(pairs, payloads):
    dec, payload = pairs[1][1], max(payloads, key=len)
    wf = WienerFilter()
    for version in (0, 1, 4, 6, 15):  # 1 and 4: pre-release layouts, no longer read; the others: none yet
        with pytest.raises(PayloadError, match="version"):
            wf.restore(dec, bytes([version << 4 | (payload[0] & 0x0F)]) + payload[1:], ctx_for(dec))
    with pytest.raises(PayloadError, match="exceeds"):
        wf.restore(dec, b"\x10" * (1 << 17), ctx_for(dec))
    with pytest.raises(PayloadError, match="trailing"):
        wf.restore(dec, payload + b"\x80", ctx_for(dec))
    small = dec.with_planes(dec.y[:64, :64], dec.u[:32, :32], dec.v[:32, :32])
    with pytest.raises(PayloadError, match="stream"):
        wf.restore(small, payload, ctx_for(dec))


def test_huge_lambda_or_perfect_frame_sends_nothing(pairs):
    src, dec = pairs[1]
    wf = WienerFilter()
    assert wf.analyze(src, dec, ctx_for(dec, qp=200)) == b""
    assert wf.analyze(src, src, ctx_for(src)) == b""


def test_ten_bit_keeps_uint16_and_range(pairs):
    src8 = [s.planes for s, _ in pairs[:2]]
    src = [tuple(p.astype(np.uint16) << 2 for p in planes) for planes in src8]
    dec = x265(src, 37, ten_bit=True)
    wf = WienerFilter()
    sent = 0
    for s, d in zip(src, dec):
        s, d = Frame(*s, bit_depth=10), Frame(*d, bit_depth=10)
        payload = wf.analyze(s, d, ctx_for(d, lambda_scale="1"))
        out = wf.restore(d, payload, ctx_for(d))
        sent += bool(payload)
        assert out.bit_depth == 10 and all(p.dtype == np.uint16 and p.max() <= 1023 for p in out.planes)
        assert psnr(out.y, s.y, 1023) >= psnr(d.y, s.y, 1023)
    assert sent


def test_default_lambda_scale_and_option_override(pairs):
    src, dec = pairs[1]
    assert WienerFilter().analyze(src, dec, ctx_for(dec, lambda_scale="1e9")) == b""


def _frame_sse(a: Frame, b: Frame) -> int:
    return sum(int(np.sum((x.astype(np.int64) - y) ** 2)) for x, y in zip(a.planes, b.planes))


def _bad_payload() -> bytes:
    """A valid payload (a set with luma only) whose luma filter (every coefficient at +1) blurs hard."""
    blur = LumaSet(5, np.full((1, 12), 32), np.zeros(1, int), np.zeros(25, int))
    return write_payload(Payload(6, Part(blur), [None, None], [None, None])).tobytes()


def test_reuses_previous_payload_when_a_new_record_costs_too_much(pairs):
    """Near-identical consecutive frames: extending the record beats paying for a new one."""
    src, dec = pairs[1]
    wf = WienerFilter()
    ctx = ctx_for(dec, qp=27, lambda_scale="1")
    first = wf.analyze(src, dec, ctx)
    assert first
    # the next frame: the same content, a few samples nudged
    y = dec.y.copy()
    y[::17, ::13] ^= 1
    nxt = dec.with_planes(y, dec.u, dec.v)
    ctx.previous_payload, ctx.record_overhead_bits = first, 10**6
    assert _frame_sse(wf.restore(nxt, first, ctx), src) < _frame_sse(nxt, src)
    assert wf.analyze(src, nxt, ctx) == first
    # the same frame again with the same previous payload: reuse is at least as good as anything
    assert wf.analyze(src, dec, ctx) == first


def test_sends_a_new_payload_when_the_previous_filter_is_bad(pairs):
    src, dec = pairs[1]
    wf = WienerFilter()
    bad = _bad_payload()
    ctx = ctx_for(dec, qp=27)
    ctx.previous_payload = bad
    assert _frame_sse(wf.restore(dec, bad, ctx), src) > _frame_sse(dec, src)
    payload = wf.analyze(src, dec, ctx)  # record_overhead_bits = 0
    assert payload and payload != bad
    assert _frame_sse(wf.restore(dec, payload, ctx), src) < _frame_sse(dec, src)


def test_off_when_lambda_is_huge_and_the_previous_filter_hurts(pairs):
    src, dec = pairs[1]
    wf = WienerFilter()
    ctx = ctx_for(dec, qp=200)
    assert wf.analyze(src, dec, ctx) == b""
    ctx.previous_payload = _bad_payload()
    assert wf.analyze(src, dec, ctx) == b""
    # a good previous payload costs no bits, so it is kept even at a huge lambda
    good = WienerFilter().analyze(src, dec, ctx_for(dec, qp=27))
    ctx.previous_payload = good
    assert wf.analyze(src, dec, ctx) == good


def test_unusable_previous_payload_is_ignored(pairs):
    src, dec = pairs[1]
    wf = WienerFilter()
    ctx = ctx_for(dec)
    expected = wf.analyze(src, dec, ctx)
    for junk in (b"\xff\xff", b"\x20", _bad_payload()[:1]):
        ctx.previous_payload = junk
        assert wf.analyze(src, dec, ctx) == expected


def test_record_overhead_is_charged_to_new_payloads(pairs):
    src, dec = pairs[1]
    wf = WienerFilter()
    ctx = ctx_for(dec, qp=27)
    assert wf.analyze(src, dec, ctx)
    ctx.record_overhead_bits = 10**7
    assert wf.analyze(src, dec, ctx) == b""
