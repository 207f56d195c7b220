"""wiener's joint chroma fit for period sets (``wiener_joint``): its Gram matrix is the per-part statistics
the sequential fit uses, its J is the one the sequential rule gives, and a period set never costs more."""

from __future__ import annotations

import numpy as np
import pytest

from genpost.builtins import wiener_joint as joint
from genpost.builtins.wiener_alf import CC_TAPS_BIG, CHROMA_PAIRS
from genpost.builtins.wiener_fit import cc_stats, fit_period, plane_stats, xc_stats

K = len(CHROMA_PAIRS)


def _random_frames(rng, n=2, shape=(24, 36), bit_depth=8):
    top = (1 << bit_depth) - 1
    out = []
    for _ in range(n):
        y = rng.integers(0, top + 1, (2 * shape[0], 2 * shape[1]))
        c, o = (rng.integers(0, top + 1, shape) for _ in range(2))
        s = np.clip(c + rng.integers(-9, 10, shape), 0, top)
        out.append((c, s, y, o))
    return out


@pytest.mark.parametrize("bit_depth", [8, 10])
@pytest.mark.parametrize("level", [0, 2, 3])
def test_joint_gram_holds_each_parts_statistics(bit_depth, level):
    """The ALF, CC-ALF and cross-chroma blocks of the joint Gram are ``plane_stats``, ``cc_stats`` and
    ``xc_stats`` (the sequential fit's) for the same plane."""
    rng = np.random.default_rng(level + bit_depth)
    frames = _random_frames(rng, bit_depth=bit_depth)
    g = joint.joint_gram(frames, bit_depth, level, CC_TAPS_BIG)
    n = len(CC_TAPS_BIG)
    t = g.shape[0] - 1
    assert g.shape == (K + n + K + 1,) * 2
    alf = np.r_[np.arange(K), t]
    cc = np.r_[np.arange(K, K + n), t]
    xc = np.r_[np.arange(K + n, K + n + K), t]
    levels = {0: 0, 2: 1, 3: 2}
    want_alf = sum(plane_stats(c.astype(np.int32), s, CHROMA_PAIRS, 2, bit_depth)[levels[level]] for c, s, _, _ in frames)
    want_cc = sum(cc_stats(y, (s - c).astype(np.int32), taps=CC_TAPS_BIG) for c, s, y, _ in frames)
    want_xc = sum(xc_stats(o, (s - c).astype(np.int32), bit_depth) for c, s, _, o in frames)
    assert np.array_equal(g[np.ix_(alf, alf)], want_alf)
    assert np.array_equal(g[np.ix_(cc, cc)], want_cc)
    assert np.array_equal(g[np.ix_(xc, xc)], want_xc)


def test_quantised_joint_filters_are_valid_and_fit_a_planted_model():
    """A target made of the three parts' features with known weights is recovered to the quantiser's step."""
    rng = np.random.default_rng(7)
    frames = _random_frames(rng, n=3, shape=(40, 48))
    g = joint.joint_gram(frames, 8, 0, CC_TAPS_BIG)
    n = len(CC_TAPS_BIG)
    true = np.zeros(g.shape[0] - 1)
    true[0], true[K + 3], true[K + n + 1] = 0.25, -0.125, 0.0625
    t = g.shape[0] - 1
    planted = g.copy()  # target := features . true, exactly
    planted[:t, t] = planted[t, :t] = g[:t, :t] @ true
    planted[t, t] = true @ g[:t, :t] @ true
    filters = joint.quantise_joint(planted, n, 0.0, 0)
    assert all(f is not None for f in filters)
    got = np.concatenate([f.coefs / float(1 << f.shift) for f in filters])
    assert np.allclose(got, true, atol=1 / 32)


def test_improve_period_keeps_or_lowers_the_cost(frames_32):
    """On real x265 frames: the sequential parts' J is reproduced by ``chain`` (the same rule), and the
    parts ``improve_period`` returns cost no more, judged together, with their SSE in ``sums``."""
    bd, lam, ctu = 8, 40.0, 64
    luma, chroma, sums = fit_period(frames_32, bd, lam, ctu)
    new_chroma, new_sums = joint.improve_period(frames_32, chroma, sums, bd, lam, ctu // 2)
    assert new_sums[0] == sums[0]
    for plane in (1, 2):
        fr = [(d.planes[plane], s.planes[plane].astype(np.int32), d.planes[0], d.planes[3 - plane]) for s, d in frames_32]

        def filters(parts):
            return [p.filt if p is not None else None for p in parts]

        old = joint.chain(fr, filters(chroma[3 * plane - 3: 3 * plane]), bd, lam, ctu // 2)
        new = joint.best_subset(fr, filters(new_chroma[3 * plane - 3: 3 * plane]), bd, lam, ctu // 2)
        assert old[1] == pytest.approx(sums[plane][0])  # chain is fit_period's own rule
        assert new[2] <= old[2]  # jointly fitted parts are judged together (best_subset)
        assert new[1] == pytest.approx(new_sums[plane][0])
        assert new_sums[plane][0] <= new_sums[plane][1] + 1e-9  # never worse than the decode


@pytest.fixture(scope="module")
def frames_32():
    pytest.importorskip("av")
    from test_wiener_alf import _real_frames

    return _real_frames()
