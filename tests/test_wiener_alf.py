"""wiener's payload (ALF-class): the normative functions against direct loop references, syntax round trips,
encoder/decoder exactness, fuzzed payloads, and the sample's exact output."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genpost import Context, Frame, PayloadError, StreamInfo
from genpost.builtins.wiener import WienerFilter, frame_payloads, restore_planes
from genpost.builtins.wiener_alf import (
    ACTIVITY_SHIFT,
    ACTIVITY_TABLE,
    CC_TAPS,
    CHROMA_PAIRS,
    LUMA_PAIRS,
    Filter,
    LumaSet,
    Part,
    Payload,
    apply_payload,
    classify,
    clip_value,
    luma_delta,
    payload_version,
    read_payload,
    write_payload,
)
from genpost.builtins.wiener_bits import BitReader
from genpost.builtins.wiener_chroma import alf_acc, cc_acc

SAMPLE = Path(__file__).parents[1] / "samples" / "bbb_wiener.mkv"


def reference_class(y: np.ndarray, bit_depth: int, by: int, bx: int) -> tuple[int, int]:
    """Class and transform of the 4x4 block (by, bx), straight from the definition, sample by sample."""
    h, w = y.shape

    def px(r, c):
        return int(y[min(max(r, 0), h - 1), min(max(c, 0), w - 1)])

    g = [0, 0, 0, 0]
    for r in range(4 * by - 2, 4 * by + 6):
        for c in range(4 * bx - 2, 4 * bx + 6):
            x2 = 2 * px(r, c)
            g[0] += abs(x2 - px(r - 1, c) - px(r + 1, c))
            g[1] += abs(x2 - px(r, c - 1) - px(r, c + 1))
            g[2] += abs(x2 - px(r - 1, c - 1) - px(r + 1, c + 1))
            g[3] += abs(x2 - px(r - 1, c + 1) - px(r + 1, c - 1))
    gv, gh, d0, d1 = g
    hv_max, hv_min, d_max, d_min = max(gv, gh), min(gv, gh), max(d0, d1), min(d0, d1)
    if hv_max <= 2 * hv_min and d_max <= 2 * d_min:
        direction = 0
    elif hv_max * d_min > d_max * hv_min:
        direction = 2 if 2 * hv_max > 9 * hv_min else 1
    else:
        direction = 4 if 2 * d_max > 9 * d_min else 3
    act = min((gv + gh) >> (bit_depth - 8 + ACTIVITY_SHIFT), 15)
    return 5 * direction + int(ACTIVITY_TABLE[act]), int(gv > gh) + 2 * int(d0 > d1)


def _image(rng, shape, bit_depth):
    """Random blocks with structure: noise, ramps and edges in random directions, so every class shows up."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    img = rng.normal(0, rng.uniform(0.2, 40), shape)
    for _ in range(6):
        a = rng.uniform(0, np.pi)
        img += rng.uniform(0, 60) * np.sin((np.cos(a) * yy + np.sin(a) * xx) * rng.uniform(0.05, 1.5))
    return np.clip(img * (1 << (bit_depth - 8)) + (1 << (bit_depth - 1)), 0, (1 << bit_depth) - 1).astype(
        np.uint8 if bit_depth == 8 else np.uint16)


@pytest.mark.parametrize("bit_depth,shape", [(8, (37, 45)), (10, (24, 30)), (8, (4, 5))])
def test_classification_matches_the_direct_definition(bit_depth, shape):
    rng = np.random.default_rng(bit_depth + shape[0])
    seen = set()
    for _ in range(3):
        y = _image(rng, shape, bit_depth)
        cls, tr = classify(y, bit_depth)
        assert cls.shape == (-(-shape[0] // 4), -(-shape[1] // 4))
        for by, bx in itertools.product(range(cls.shape[0]), range(cls.shape[1])):
            assert (cls[by, bx], tr[by, bx]) == reference_class(y, bit_depth, by, bx)
            seen.add((int(cls[by, bx]) // 5, int(tr[by, bx])))
    if shape[0] > 8:
        assert len({d for d, _ in seen}) >= 3 and len({t for _, t in seen}) == 4


def _transform(o, t):
    dy, dx = o
    return ((dy, dx), (dx, dy), (-dy, dx), (-dx, dy))[t]


def test_luma_filter_matches_the_direct_formula():
    """Per sample: the class's filter, its coefficients moved by the block's transform, clipped pairs."""
    rng = np.random.default_rng(5)
    bd = 10
    y = _image(rng, (13, 18), bd)
    ls = LumaSet(7, rng.integers(-90, 90, (3, 12)), np.array([0, 2, 1]), rng.integers(0, 3, 25))
    out = luma_delta(y, ls, bd)
    cls, tr = classify(y, bd)
    h, w = y.shape

    def px(r, c):
        return int(y[min(max(r, 0), h - 1), min(max(c, 0), w - 1)])

    for r, c in itertools.product(range(h), range(w)):
        f = ls.class_map[cls[r // 4, c // 4]]
        t = tr[r // 4, c // 4]
        cv = clip_value(int(ls.clips[f]), bd)
        acc = 0
        for coef, o in zip(ls.coefs[f], LUMA_PAIRS):
            dy, dx = _transform(o, t)
            a = min(max(px(r + dy, c + dx) - px(r, c), -cv), cv)
            b = min(max(px(r - dy, c - dx) - px(r, c), -cv), cv)
            acc += int(coef) * (a + b)
        assert out[r, c] == (acc + 64) >> 7


def test_chroma_and_cross_component_sums_match_the_direct_formula():
    """A plain chroma ALF and VVC's 7-tap CC-ALF: their unrounded sums in 2^-8 units (``wiener_chroma``;
    alternatives, the 23-tap shape and the rounding: test_wiener_chroma.py)."""
    rng = np.random.default_rng(6)
    y = _image(rng, (11, 15), 8)
    u = _image(rng, (6, 8), 8)
    f = Filter(6, rng.integers(-64, 64, len(CHROMA_PAIRS)), 1)
    cc = Filter(7, rng.integers(-100, 100, len(CC_TAPS)))
    d, dcc = alf_acc(u, f, 8), cc_acc(y, u.shape, cc)

    def px(a, r, c):
        return int(a[min(max(r, 0), a.shape[0] - 1), min(max(c, 0), a.shape[1] - 1)])

    cv = clip_value(1, 8)
    for r, c in itertools.product(range(6), range(8)):
        acc = sum(int(k) * (min(max(px(u, r + dy, c + dx) - px(u, r, c), -cv), cv)
                            + min(max(px(u, r - dy, c - dx) - px(u, r, c), -cv), cv))
                  for k, (dy, dx) in zip(f.coefs, CHROMA_PAIRS))
        assert d[r, c] == acc << (8 - 6)
        acc = sum(int(k) * (px(y, 2 * r + dy, 2 * c + dx) - px(y, 2 * r, 2 * c))
                  for k, (dy, dx) in zip(cc.coefs, CC_TAPS))
        assert dcc[r, c] == acc << (8 - 7)


def _random_payload(rng, shape) -> Payload:
    g = (-(-shape[0] // 64), -(-shape[1] // 64))
    n = int(rng.integers(1, 9))

    def flags():
        return None if rng.random() < 0.4 else rng.random(g) < 0.5

    luma = Part(LumaSet(int(rng.integers(5, 9)), rng.integers(-32, 33, (n, 12)), rng.integers(0, 4, n),
                        rng.integers(0, n, 25)), flags())
    chroma = [None if rng.random() < 0.3 else Part(Filter(int(rng.integers(5, 9)), rng.integers(-32, 33, 6),
                                                         int(rng.integers(0, 4))), flags()) for _ in range(2)]
    cc = [None if rng.random() < 0.3 else Part(Filter(int(rng.integers(5, 9)), rng.integers(-32, 33, 7)), flags())
          for _ in range(2)]
    return Payload(6, luma, chroma, cc)


def test_syntax_round_trip():
    rng = np.random.default_rng(7)
    shape = (300, 500)
    for k in range(20):
        pl = _random_payload(rng, shape)
        if k % 4 == 0:  # a set without chroma parts: version 2, the same without their flags
            pl.chroma, pl.cc = [None, None], [None, None]
        rd = BitReader(write_payload(pl).tobytes())
        version = rd.u(4)
        assert version == payload_version(pl) == (5 if any(pl.chroma + pl.cc) else 2)
        back = read_payload(rd, shape, version)
        assert back.ctu_log2 == pl.ctu_log2
        for a, b in zip([pl.luma, *pl.chroma, *pl.cc], [back.luma, *back.chroma, *back.cc]):
            assert (a is None) == (b is None)
            if a is None:
                continue
            assert (a.flags is None and b.flags is None) or np.array_equal(a.flags, b.flags)
            for field in vars(a.filt):
                assert np.array_equal(getattr(a.filt, field), getattr(b.filt, field)), field


def _real_frames():
    from test_wiener import Y4M, read_y4m, x265  # the carphone clip through real x265

    src = read_y4m(Y4M, 2)
    return [(Frame(*s, index=i), Frame(*d, index=i)) for i, (s, d) in enumerate(zip(src, x265(src, 32)))]


@pytest.fixture(scope="module")
def real_pair():
    pytest.importorskip("av")
    return _real_frames()[1]


def test_encoder_sse_is_the_decoders_exactly(real_pair):
    """The per-plane SSE the RD search charged is what restore produces from the coded bytes."""
    src, dec = real_pair
    for lam in (1.0, 20.0, 60.0):
        candidates = frame_payloads(src, dec, lam)
        assert candidates, lam
        for sse, payload in candidates:
            out = restore_planes(dec.planes, payload, 8)
            assert [float(np.sum((o.astype(np.int64) - s) ** 2)) for o, s in zip(out, src.planes)] == sse
            # no plane is made worse
            assert all(a <= float(np.sum((d.astype(np.int64) - s) ** 2))
                       for a, d, s in zip(sse, dec.planes, src.planes))


def test_record_frames_amortises_a_new_filter_set(real_pair):
    src, dec = real_pair
    ctx = Context(stream=StreamInfo(dec.width, dec.height, 8, "hevc", None, None), qp=37,
                  record_overhead_bits=8 * 60, base_bits=1e5)
    wf = WienerFilter()
    single = wf.analyze(src, dec, ctx)
    ctx.options = {"wiener.record_frames": "64"}
    amortised = wf.analyze(src, dec, ctx)
    assert amortised and len(amortised) >= len(single)
    ctx.options = {"wiener.record_frames": "0"}
    with pytest.raises(ValueError, match="record_frames"):
        wf.analyze(src, dec, ctx)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=1, max_size=200), st.sampled_from([None, 2, 5]))
def test_fuzzed_payloads_restore_or_raise_payload_error(data, version):
    if version:  # most random bytes fail at the version; force one to reach its parser
        data = bytes([version << 4 | (data[0] & 0x0F)]) + data[1:]
    rng = np.random.default_rng(len(data))
    planes = [rng.integers(0, 256, s).astype(np.uint8) for s in ((40, 70), (20, 35), (20, 35))]
    try:
        out = restore_planes(planes, data, 8)
    except PayloadError:
        return
    assert [(p.shape, p.dtype) for p in out] == [(p.shape, p.dtype) for p in planes]


def test_the_sample_restores_exactly():
    """samples/bbb_wiener.mkv (samples/make_samples.py) carries one record unit: the period's filter set
    (payload version 5) and the frames' reference to it (version 3), both over all 66 frames. restore must
    give its exact output (md5s recorded when the sample was made)."""
    media = pytest.importorskip("genpost.media")
    from genpost.jobs import pipeline

    expected = {0: "1bf4f58a06df517d399092004b8c6141", 1: "a31924f3d9dfb4bb66c7bc4f44f87bee"}
    with media.InputFile(SAMPLE) as inp:
        index = pipeline.collect_side_info(inp)
        info = inp.info
        frames = list(itertools.islice(inp.frames(), 2))
    assert index.stats()["malformed"] == 0
    wf = WienerFilter()
    for f in frames:
        payload, update = index.get("wiener/1", f.index), index.get("wiener/1+update", f.index)
        assert payload and update and payload[0] >> 4 == 3 and update[0] >> 4 == 5
        out = wf.restore(f, payload, Context(stream=info, update=update))
        assert hashlib.md5(b"".join(p.tobytes() for p in out.planes)).hexdigest() == expected[f.index]


def test_compiled_kernels_match_numpy(monkeypatch):
    """With numba installed, the compiled decoder must give the numpy code's output bit for bit."""
    from genpost.builtins import wiener_alf, wiener_chroma, wiener_jit

    if wiener_jit.kernels() is None:
        pytest.skip("numba not installed (pip install 'genpost[fast]')")
    rng = np.random.default_rng(11)
    for bd, shape in ((8, (37, 61)), (10, (20, 18))):
        y = _image(rng, shape, bd)
        u = _image(rng, ((shape[0] + 1) // 2, (shape[1] + 1) // 2), bd)
        ls = LumaSet(int(rng.integers(5, 9)), rng.integers(-60, 60, (4, 12)), np.array([0, 1, 2, 3]),
                     rng.integers(0, 4, 25))
        f, cc = Filter(6, rng.integers(-60, 60, 6), 2), Filter(7, rng.integers(-90, 90, 7))
        cc_big = Filter(8, rng.integers(-250, 250, 23))
        planes = [y, u, _image(rng, u.shape, bd)]
        payloads = [_random_payload(rng, shape) for _ in range(4)]

        def run():
            return (classify(y, bd), luma_delta(y, ls, bd), alf_acc(u, f, bd), cc_acc(y, u.shape, cc),
                    cc_acc(y, u.shape, cc_big),
                    *[p for pl in payloads for p in apply_payload(planes, pl, bd)])

        jit = run()
        monkeypatch.setattr(wiener_alf, "kernels", lambda: None)
        monkeypatch.setattr(wiener_chroma, "kernels", lambda: None)
        ref = run()
        monkeypatch.undo()
        assert all(np.array_equal(a, b) for a, b in zip(jit[0], ref[0]))
        for a, b in zip(jit[1:], ref[1:]):
            assert a.dtype == b.dtype and np.array_equal(a, b)
