"""NIQE and flicker: the numbers the perception axis of genpost eval is judged on."""

from __future__ import annotations

import numpy as np
import pytest

from genpost import media
from genpost.eval import naturalness


def _frames(path, count):
    with media.InputFile(path) as f:
        return [fr for _, fr in zip(range(count), f.frames())]


def _photo() -> np.ndarray:
    """A natural-looking 256x288 luma plane: a 1/f noise field (what natural pictures' spectra look like)."""
    rng = np.random.default_rng(1)
    f = np.fft.fft2(rng.standard_normal((256, 288)))
    fy, fx = np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(288), indexing="ij")
    img = np.real(np.fft.ifft2(f / np.maximum(np.hypot(fy, fx), 1 / 256)))
    return np.clip(128 + 40 * img / img.std(), 0, 255).astype(np.uint8)


def test_niqe_rises_with_blur_and_blocking_and_is_deterministic():
    y = _photo()
    base = naturalness.niqe(y)
    assert base == naturalness.niqe(y)
    blurred = np.repeat(np.repeat(y[::4, ::4], 4, 0), 4, 1)  # 4x4 blocks, as a coarse quantiser leaves
    assert naturalness.niqe(blurred) > base + 1.0


def test_niqe_scales_10_bit_to_the_same_value():
    y = _photo()
    assert naturalness.niqe(y.astype(np.uint16) << 2, 10) == pytest.approx(naturalness.niqe(y), rel=1e-6)


def test_niqe_refuses_small_pictures():
    with pytest.raises(ValueError, match="194"):
        naturalness.niqe(np.zeros((144, 176), np.uint8))


def test_half_bicubic_matches_pil():
    Image = pytest.importorskip("PIL.Image")
    img = np.random.default_rng(2).random((50, 38)).astype(np.float32) * 255
    ref = np.asarray(Image.fromarray(img, mode="F").resize((19, 25), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(naturalness._half_bicubic(img.astype(np.float64)), ref, atol=2e-3)


def test_flicker_is_zero_for_the_source_and_counts_invented_texture(carphone):
    frames = _frames(carphone, 4)
    ys = [f.y for f in frames]
    same = [naturalness.temporal_error((ys[i - 1], ys[i]), (ys[i - 1], ys[i])) for i in range(1, 4)]
    assert naturalness.flicker(same) == 0.0
    rng = np.random.default_rng(0)
    noisy = [np.clip(y.astype(int) + rng.integers(-3, 4, y.shape), 0, 255) for y in ys]  # new noise per frame
    steady_noise = rng.integers(-3, 4, ys[0].shape)
    steady = [np.clip(y.astype(int) + steady_noise, 0, 255) for y in ys]  # the same texture in every frame
    f_noisy = naturalness.flicker([naturalness.temporal_error((ys[i - 1], ys[i]), (noisy[i - 1], noisy[i])) for i in range(1, 4)])
    f_steady = naturalness.flicker([naturalness.temporal_error((ys[i - 1], ys[i]), (steady[i - 1], steady[i])) for i in range(1, 4)])
    assert f_noisy > 2.0 > f_steady
