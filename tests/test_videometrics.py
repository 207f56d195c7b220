"""ColorVideoVDP through genpost.eval.videometrics: a one-line reason where it is not installed, JOD where it is."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from genpost.eval import videometrics


def test_unavailable_is_a_reason_not_an_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    out = videometrics.load()
    assert isinstance(out["cvvdp"], str) and "genpost[perception]" in out["cvvdp"]


@pytest.mark.skipif(importlib.util.find_spec("pycvvdp") is None, reason='cvvdp not installed (pip install "genpost[perception]")')
def test_cvvdp_scores_identical_10_and_visible_noise_lower():
    score = videometrics.load()["cvvdp"]
    assert callable(score)
    rng = np.random.default_rng(0)
    ref = [rng.random((64, 96, 3)).astype(np.float32) * 0.5 + 0.25 for _ in range(4)]
    noisy = [np.clip(f + rng.normal(0, 0.03, f.shape), 0, 1) for f in ref]
    assert score(ref, ref, 25.0) == pytest.approx(10.0, abs=1e-3)
    assert score(ref, noisy, 25.0) < 9.9
