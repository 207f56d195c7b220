"""wiener's chroma (``wiener_chroma``, ``wiener_alts``; payload version 5): chroma rounded once and ALF
alternatives on a coded map. The normative sums against direct per-sample formulas, the map and payload
syntax round trips, fuzzed payloads, encoder/decoder exactness, and the alternatives never costing more than
one filter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_wiener_alf import _image, _random_payload

from genpost import Context, Frame, PayloadError, StreamInfo
from genpost.builtins import wiener_alf as alf
from genpost.builtins import wiener_alts as alts
from genpost.builtins import wiener_chroma as chroma
from genpost.builtins.wiener import WienerFilter, reference_payloads, restore_planes
from genpost.builtins.wiener_bits import BitReader, BitWriter
from genpost.builtins.wiener_joint import best_subset


def _px(a, r, c):
    return int(a[min(max(r, 0), a.shape[0] - 1), min(max(c, 0), a.shape[1] - 1)])


def _pair_sum(a, r, c, coefs, cv):
    return sum(int(k) * (min(max(_px(a, r + dy, c + dx) - _px(a, r, c), -cv), cv)
                         + min(max(_px(a, r - dy, c - dx) - _px(a, r, c), -cv), cv))
               for k, (dy, dx) in zip(coefs, chroma.CHROMA_PAIRS))


def _alt_filter(rng, shape, n, log2=3):
    fs = [alf.Filter(int(rng.integers(5, 9)), rng.integers(-32, 33, 6), int(rng.integers(0, 4))) for _ in range(n)]
    g = (-(-shape[0] // (1 << log2)), -(-shape[1] // (1 << log2)))
    return chroma.AltFilter(fs, rng.integers(0, n + 1, g), log2)


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_sums_and_one_rounding_match_the_direct_formula(bit_depth):
    """Each part's sum is its coefficients times 2^(8 - S) over its features; the plane's output adds the
    sums of the parts on at the sample (CTU flags) and rounds once."""
    rng = np.random.default_rng(bit_depth)
    y = _image(rng, (26, 34), bit_depth)
    u, v = _image(rng, (13, 17), bit_depth), _image(rng, (13, 17), bit_depth)
    af = _alt_filter(rng, u.shape, 3)
    cc = alf.Filter(7, rng.integers(-100, 100, len(alf.CC_TAPS_BIG)))
    xc = alf.Filter(6, rng.integers(-60, 60, 6))
    a, c_, x_ = chroma.alf_acc(u, af, bit_depth), chroma.cc_acc(y, u.shape, cc), chroma.xc_acc(v, xc, bit_depth)
    flags = np.array([[True] * 3, [False] * 3])  # CTU 8 in chroma: rows 0-7 on, 8-12 off, for the CC part
    out = chroma.joint_output(u, [(a, None), (c_, flags), (x_, None)], 8, bit_depth)
    for r, c in itertools.product(range(13), range(17)):
        v_ = int(af.amap[r // 8, c // 8])
        want_a = 0
        if v_:
            f = af.alts[v_ - 1]
            want_a = _pair_sum(u, r, c, f.coefs, alf.clip_value(f.clip, bit_depth)) << (8 - f.shift)
        want_c = sum(int(k) * (_px(y, 2 * r + dy, 2 * c + dx) - _px(y, 2 * r, 2 * c))
                     for k, (dy, dx) in zip(cc.coefs, alf.CC_TAPS_BIG)) << 1
        want_x = _pair_sum(v, r, c, xc.coefs, 1 << bit_depth) << 2
        assert (a[r, c], c_[r, c], x_[r, c]) == (want_a, want_c, want_x)
        total = want_a + (want_c if r < 8 else 0) + want_x
        assert out[r, c] == min(max(int(u[r, c]) + ((total + 128) >> 8), 0), (1 << bit_depth) - 1)


def test_compiled_sums_match_numpy(monkeypatch):
    from genpost.builtins import wiener_jit

    if wiener_jit.kernels() is None:
        pytest.skip("numba not installed (pip install 'genpost[fast]')")
    rng = np.random.default_rng(12)
    for bd, shape in ((8, (21, 30)), (10, (9, 40))):
        u, y = _image(rng, shape, bd), _image(rng, (2 * shape[0], 2 * shape[1]), bd)
        filters = [_alt_filter(rng, shape, n, log2) for n, log2 in ((1, 3), (2, 4), (4, 3))]
        cc = alf.Filter(8, rng.integers(-250, 250, 23))

        def run():
            sums = [chroma.alf_acc(u, f, bd) for f in filters]
            return sums + [chroma.cc_acc(y, shape, cc), chroma.xc_acc(u, filters[0].alts[0], bd)]

        jit = run()
        monkeypatch.setattr(chroma, "kernels", lambda: None)
        ref = run()
        monkeypatch.undo()
        for a, b in zip(jit, ref):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_map_syntax_round_trip_and_bits():
    rng = np.random.default_rng(1)
    for n in range(1, chroma.MAX_ALTS + 1):
        for g in ((1, 1), (3, 5), (7, 2)):
            for smooth in (False, True):
                m = rng.integers(0, n + 1, g)
                if smooth:
                    m = np.repeat(m[:, :1], g[1], axis=1)
                w = BitWriter()
                chroma.write_map(w, m, n)
                assert len(w.bits) == chroma.map_bits(m, n)
                back = chroma.read_map(BitReader(w.tobytes()), g, n)
                assert np.array_equal(back, m)
    w = BitWriter()
    chroma.write_map(w, np.full((4, 4), 2), 2)
    with pytest.raises(PayloadError, match="truncated"):
        chroma.read_map(BitReader(w.tobytes()), (9, 9), 2)


def _set_payload(rng, shape):
    pl = _random_payload(rng, shape)
    cshape = ((shape[0] + 1) // 2, (shape[1] + 1) // 2)
    pl.chroma[0] = alf.Part(_alt_filter(rng, cshape, int(rng.integers(1, 5)), int(rng.integers(3, 7))))
    pl.xc = [alf.Part(alf.Filter(6, rng.integers(-30, 31, 6))), None]
    return pl


def test_version_5_round_trip_and_restore():
    rng = np.random.default_rng(2)
    shape = (70, 100)
    for _ in range(10):
        pl = _set_payload(rng, shape)
        data = alf.write_payload(pl).tobytes()
        rd = BitReader(data)
        assert rd.u(4) == alf.VERSION_SET
        back = alf.read_payload(rd, shape, alf.VERSION_SET)
        assert back.xc[0] is not None and np.array_equal(back.xc[0].filt.coefs, pl.xc[0].filt.coefs)
        a, b = pl.chroma[0].filt, back.chroma[0].filt
        assert np.array_equal(a.amap, b.amap) and a.map_log2 == b.map_log2
        assert [(f.shift, f.clip, f.coefs.tolist()) for f in a.alts] == [(f.shift, f.clip, f.coefs.tolist()) for f in b.alts]
        planes = [_image(rng, shape, 8), _image(rng, (35, 50), 8), _image(rng, (35, 50), 8)]
        assert all(np.array_equal(p, q) for p, q in zip(restore_planes(planes, data, 8), alf.apply_payload(planes, pl, 8)))
    plain = alf.Payload(6, None, [alf.Part(alf.Filter(6, np.arange(6) - 3, 1)), None], [None, None])
    rd = BitReader(alf.write_payload(plain).tobytes())
    assert rd.u(4) == alf.VERSION_SET
    assert isinstance(alf.read_payload(rd, shape, alf.VERSION_SET).chroma[0].filt, alf.Filter)  # one filter, no map
    luma_only = alf.Payload(6, plain.luma, [None, None], [None, None])
    assert BitReader(alf.write_payload(luma_only).tobytes()).u(4) == alf.VERSION_LUMA  # no chroma part flags


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=160), st.booleans())
def test_fuzzed_version_5_payloads_restore_or_raise(data, reference):
    """Random version-5 payloads, and version-3 payloads against a version-5 set with a map, restore to
    planes of the right shape or raise PayloadError."""
    rng = np.random.default_rng(len(data))
    shape = (40, 70)
    planes = [rng.integers(0, 256, s).astype(np.uint8) for s in (shape, (20, 35), (20, 35))]
    update = None
    if reference:
        upl = _set_payload(np.random.default_rng(0), shape)
        for p in alf.parts_of(upl):
            if p is not None:
                p.flags = None
        update = alf.write_payload(upl).tobytes()
        tag = alf.update_tag(update)
        data = bytes([0x30 | tag >> 4, (tag & 0x0F) << 4 | (data[0] & 0x0F)]) + data[1:]
    else:
        data = bytes([0x50 | (data[0] & 0x0F)]) + data[1:]
    try:
        out = restore_planes(planes, data, 8, update)
    except PayloadError:
        return
    assert [(p.shape, p.dtype) for p in out] == [(p.shape, p.dtype) for p in planes]


def _two_region_frames(n=3, shape=(64, 96)):
    """Chroma whose left half is the source blurred and whose right half is the source sharpened: one
    filter cannot undo both, two alternatives on a map can. Luma is blurred too, so that a set's luma gain
    pays for its bits (a set that gains nothing on luma is never sent: ``genpost.rdcost``)."""
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        src = [_image(rng, shape, 8)] + [_image(rng, (shape[0] // 2, shape[1] // 2), 8) for _ in range(2)]
        p = np.pad(src[0].astype(np.int32), 1, mode="edge")
        dec = [((p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] + 4 * src[0]) // 8).astype(np.uint8)]
        for c in src[1:]:
            p = np.pad(c.astype(np.int32), 1, mode="edge")
            blur = (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] + 4 * c) // 8
            sharp = np.clip(2 * c.astype(np.int32) - blur, 0, 255)
            d = np.where(np.arange(c.shape[1])[None, :] < c.shape[1] // 2, blur, sharp)
            dec.append(d.astype(np.uint8))
        out.append((Frame(*src, index=i), Frame(*dec, index=i)))
    return out


@pytest.mark.parametrize("bit_depth,shape", [(8, (64, 96)), (10, (38, 70))])
def test_alternatives_pay_where_regions_differ_and_restore_bit_exactly(bit_depth, shape):
    """A period set on two-region chroma takes ALF alternatives on both planes; the per-plane SSE the
    encoder charged is what restore gives, and a frame referencing the set matches its candidates
    (8-bit, and 10-bit with ragged map blocks)."""
    pairs = _two_region_frames(3, shape)
    if bit_depth == 10:
        pairs = [(Frame(*[(p.astype(np.uint16) << 2) | 1 for p in s.planes], bit_depth=10, index=s.index),
                  Frame(*[p.astype(np.uint16) << 2 for p in d.planes], bit_depth=10, index=d.index)) for s, d in pairs]
    dec0 = pairs[0][1]
    ctx = Context(stream=StreamInfo(dec0.width, dec0.height, bit_depth, "hevc", None, None), qp=32,
                  period_frames=30, record_overhead_bits=8 * 30, base_bits=1e5)
    update = WienerFilter().adapt(pairs, ctx)
    assert update and update[0] >> 4 == alf.VERSION_SET
    upl = alf.read_update(update, dec0.y.shape)
    assert all(isinstance(p.filt, chroma.AltFilter) for p in (upl.chroma[0], upl.chroma[1]))
    for src, dec in pairs:
        for sse, payload in reference_payloads(src, dec, update, 20.0 * (1 << 2 * (bit_depth - 8))):
            out = restore_planes(dec.planes, payload, bit_depth, update)
            assert [float(np.sum((o.astype(np.int64) - s) ** 2)) for o, s in zip(out, src.planes)] == sse
            assert all(a <= float(np.sum((d.astype(np.int64) - s) ** 2)) for a, d, s in zip(sse, dec.planes, src.planes))


@pytest.mark.parametrize("lam", [2.0, 50.0, 1e9])
def test_alternatives_never_cost_more_than_one_filter(lam):
    """``best_alternatives`` returns the one-filter parts unless alternatives cost less by J, and its SSE
    is the decoder's output over the frames."""
    pairs = _two_region_frames(2, (48, 64))
    frames = [(d.v, s.v.astype(np.int32), d.y, d.u) for s, d in pairs]
    base = [alf.Part(alf.Filter(6, np.array([8, 2, 0, 0, 0, 0]), 0)), None, None]
    kept, sse0, _ = best_subset(frames, [p and p.filt for p in base], 8, lam, 64)
    j0 = sse0 + lam * alts.parts_bits(kept)
    parts, sse, j = alts.best_alternatives(frames, base, 8, lam)
    assert j <= j0
    pl = alf.Payload(6, None, [None, parts[0]], [None, parts[1]], [None, parts[2]])
    got = sum(float(np.sum((alf.apply_payload(d.planes, pl, 8)[2].astype(np.int64) - s.v) ** 2)) for s, d in pairs)
    assert got == sse
    if lam >= 1e9:  # nothing pays: the one filter stays
        assert not isinstance(parts[0].filt if parts[0] else None, chroma.AltFilter)


def test_alternatives_option_off_sends_no_alternatives():
    pairs = _two_region_frames()
    dec0 = pairs[0][1]
    ctx = Context(stream=StreamInfo(dec0.width, dec0.height, 8, "hevc", None, None), qp=32, period_frames=30,
                  record_overhead_bits=8 * 30, options={"wiener.alternatives": "0"})
    update = WienerFilter().adapt(pairs, ctx)  # one filter cannot undo both halves: maybe no set at all
    parts = [] if not update else alf.read_update(update, dec0.y.shape).chroma
    assert not any(isinstance(p.filt, chroma.AltFilter) for p in parts if p is not None)
