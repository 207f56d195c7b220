"""Metrics against independent computations: BD-rate worked cases, numpy re-derivations, and FFmpeg's own
tools (the ffmpeg 9 binary's xpsnr summary and libvmaf's SSIM) on real decoded frames."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import subprocess
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import CARPHONE, VVC, decode_all
from numpy.lib.stride_tricks import sliding_window_view

from genpost import media
from genpost.eval import deepmetrics, metrics, perceptual
from genpost.media import ffmpeg
from genpost.types import ColorInfo, Frame, StreamInfo, to_bit_depth

RATES = [92.0, 171.0, 318.0, 604.0]
PSNR = [30.2, 33.1, 35.7, 38.4]


# ---------------------------------------------------------------- BD-rate


def test_bd_rate_identical_curves_is_zero():
    assert metrics.bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("factor", [0.5, 0.8, 1.0, 1.25, 3.0])
def test_bd_rate_of_a_rate_scaled_curve_is_that_factor(factor):
    test = [r * factor for r in RATES]
    assert metrics.bd_rate(RATES, PSNR, test, PSNR) == pytest.approx((factor - 1) * 100, abs=1e-9)


def test_bd_rate_of_a_quality_shift_on_a_log_linear_curve():
    # log10(R) = a + b*Q: a curve shifted up by dq dB needs 10^(-b*dq) of the rate at every quality
    a, b, dq = -1.0, 0.1, 0.5
    q = np.array([30.0, 33.0, 36.0, 39.0])
    rates = 10 ** (a + b * q)
    expected = (10 ** (-b * dq) - 1) * 100
    assert metrics.bd_rate(rates, q, rates, q + dq) == pytest.approx(expected, abs=1e-9)


def test_bd_rate_ignores_point_order_and_is_antisymmetric_in_log_rate():
    test = [95.0, 160.0, 300.0, 610.0]
    quality = [30.5, 33.1, 35.9, 38.3]
    forward = metrics.bd_rate(RATES, PSNR, test, quality)
    shuffled = metrics.bd_rate(
        RATES[::-1], PSNR[::-1], [test[i] for i in (2, 0, 3, 1)], [quality[i] for i in (2, 0, 3, 1)]
    )
    assert forward == pytest.approx(shuffled, abs=1e-12)
    backward = metrics.bd_rate(test, quality, RATES, PSNR)
    assert (1 + forward / 100) * (1 + backward / 100) == pytest.approx(1.0, abs=1e-12)


def test_bd_rate_matches_scipy_pchip():
    from scipy import interpolate as scipy_interp  # the test extra installs scipy: this cross-check always runs
    test = [95.0, 160.0, 300.0, 610.0]
    quality = [30.5, 33.1, 35.9, 38.3]
    fa = scipy_interp.PchipInterpolator(PSNR, np.log10(RATES))
    ft = scipy_interp.PchipInterpolator(quality, np.log10(test))
    lo, hi = max(PSNR[0], quality[0]), min(PSNR[-1], quality[-1])
    expected = (10 ** ((ft.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo)) - 1) * 100
    assert metrics.bd_rate(RATES, PSNR, test, quality) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    "anchor_q, test_q",
    [
        (PSNR, [40.0, 41.0, 42.0, 43.0]),  # no overlapping quality
        (PSNR, [30.2, 33.1, 33.1, 38.4]),  # quality not increasing with rate
        (PSNR[:1], PSNR[:1]),  # a single point
    ],
)
def test_bd_rate_is_nan_where_undefined(anchor_q, test_q):
    n = len(anchor_q)
    assert math.isnan(metrics.bd_rate(RATES[:n], anchor_q, RATES[: len(test_q)], test_q))


# ---------------------------------------------------------------- PSNR and MS-SSIM on real frames


@pytest.fixture(scope="module")
def carphone_pair():
    """Source frames and their 10-bit VTM decode (low delay, QP 37), brought to 8 bits."""
    source = decode_all(CARPHONE)[:4]
    decoded = [to_bit_depth(f, 8) for f in decode_all(VVC / "carphone_176x144_29.97_ld_qp37.266", 30)[:4]]
    return source, decoded


@pytest.fixture(scope="module")
def bbb_pair():
    """416x240 frames: the QP 27 and QP 42 VTM decodes of Big Buck Bunny (8-bit), as reference and test."""
    ref = [to_bit_depth(f, 8) for f in decode_all(VVC / "bigbuckbunny_416x240_25_ra_qp27.266", 25)[:3]]
    test = [to_bit_depth(f, 8) for f in decode_all(VVC / "bigbuckbunny_416x240_25_ra_qp42.266", 25)[:3]]
    return ref, test


def test_psnr_matches_numpy(carphone_pair):
    for ref, test in zip(*carphone_pair):
        for r, t, mse in zip(ref.planes, test.planes, metrics.frame_mse(ref, test)):
            expected = 10 * np.log10(255.0**2 / np.mean((r.astype(float) - t.astype(float)) ** 2))
            assert metrics.psnr(mse, 8) == pytest.approx(expected, abs=1e-9)


def test_psnr_compares_at_the_reference_bit_depth(carphone_pair):
    """A 10-bit test frame is rounded to the 8-bit reference first: (x + 2) >> 2."""
    ref, test = carphone_pair[0][0], carphone_pair[1][0]
    ten = Frame(*(p.astype(np.uint16) * 4 + 1 for p in test.planes), bit_depth=10)  # rounds back to test
    assert metrics.frame_mse(ref, ten) == metrics.frame_mse(ref, test)


def _naive_ms_ssim(x: np.ndarray, y: np.ndarray, peak: float) -> float:
    """MS-SSIM straight from Wang et al. 2003: a 2-D window, explicit local statistics per window."""
    ax = np.arange(11) - 5.0
    window = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    weights = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    x, y = x.astype(np.float64), y.astype(np.float64)
    result = 1.0
    for level in range(5):
        pad = [(0, 0), (0, 0)]
        for axis in (0, 1):  # mirror-extend planes smaller than the window (genpost's documented rule)
            short = max(0, 11 - x.shape[axis])
            pad[axis] = (short // 2, short - short // 2)
        xs, ys = np.pad(x, pad, mode="symmetric"), np.pad(y, pad, mode="symmetric")
        wx, wy = sliding_window_view(xs, (11, 11)), sliding_window_view(ys, (11, 11))
        mx, my = np.einsum("ijkl,kl->ij", wx, window), np.einsum("ijkl,kl->ij", wy, window)
        vx = np.einsum("ijkl,kl->ij", (wx - mx[..., None, None]) ** 2, window)
        vy = np.einsum("ijkl,kl->ij", (wy - my[..., None, None]) ** 2, window)
        cov = np.einsum("ijkl,kl->ij", (wx - mx[..., None, None]) * (wy - my[..., None, None]), window)
        cs = np.mean((2 * cov + c2) / (vx + vy + c2))
        if level == 4:
            ssim = np.mean((2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
            return float(result * ssim ** weights[4])
        result *= cs ** weights[level]
        h, w = (x.shape[0] + 1) // 2 * 2, (x.shape[1] + 1) // 2 * 2
        x = (
            np.pad(x, ((0, h - x.shape[0]), (0, w - x.shape[1])), mode="edge")
            .reshape(h // 2, 2, w // 2, 2)
            .mean((1, 3))
        )
        y = (
            np.pad(y, ((0, h - y.shape[0]), (0, w - y.shape[1])), mode="edge")
            .reshape(h // 2, 2, w // 2, 2)
            .mean((1, 3))
        )


@pytest.mark.parametrize("pair", ["carphone_pair", "bbb_pair"])
def test_ms_ssim_matches_a_naive_implementation(pair, request):
    refs, tests = request.getfixturevalue(pair)
    for ref, test in zip(refs, tests):
        got = metrics.ms_ssim(ref.y, test.y, 8)
        assert 0.5 < got < 1.0
        assert got == pytest.approx(_naive_ms_ssim(ref.y, test.y, 255.0), abs=1e-10)


def test_ms_ssim_of_identical_planes_is_one_and_falls_with_noise(carphone_pair):
    y = carphone_pair[0][0].y
    assert metrics.ms_ssim(y, y, 8) == pytest.approx(1.0, abs=1e-12)
    noisy = np.clip(y.astype(int) + np.random.default_rng(0).integers(-20, 21, y.shape), 0, 255)
    assert metrics.ms_ssim(y, noisy, 8) < metrics.ms_ssim(y, carphone_pair[1][0].y, 8) < 1.0
    assert metrics.ms_ssim_db(1.0) == metrics.PSNR_CAP and metrics.ms_ssim_db(0.9) == pytest.approx(10.0)


def _y4m(path, frames, rate=Fraction(25)):
    first = frames[0]
    info = StreamInfo(first.width, first.height, first.bit_depth, "rawvideo", 1 / rate, rate)
    out = media.OutputFile(path, info, media.EncoderSettings(codec="y4m"))
    for f in frames:
        out.encode(f)
    out.close()


def test_ssim_core_and_ms_ssim_agree_with_libvmaf(bbb_pair, tmp_path):
    """libvmaf's float_ssim uses the same window and constants: single-scale SSIM matches closely. Its
    float_ms_ssim downsamples with a different low-pass filter, so MS-SSIM agrees only to ~0.01."""
    refs, tests = bbb_pair
    _y4m(tmp_path / "ref.y4m", refs)
    _y4m(tmp_path / "test.y4m", tests)
    log = tmp_path / "vmaf.json"
    features = f"libvmaf=feature=name=float_ssim|name=float_ms_ssim:log_fmt=json:log_path={log}"
    subprocess.run(
        [ffmpeg.executable(), "-hide_banner", "-loglevel", "error", "-i", str(tmp_path / "test.y4m"), "-i",
         str(tmp_path / "ref.y4m"), "-lavfi", features, "-f", "null", "-"], check=True)  # fmt: skip
    frames = json.loads(log.read_text())["frames"]
    g = metrics.gaussian_window()
    for ref, test, entry in zip(refs, tests, frames, strict=True):
        ssim, _ = metrics._ssim_cs(ref.y.astype(float), test.y.astype(float), 255.0, g)
        assert ssim == pytest.approx(entry["metrics"]["float_ssim"], abs=2e-4)
        assert metrics.ms_ssim(ref.y, test.y, 8) == pytest.approx(entry["metrics"]["float_ms_ssim"], abs=1e-2)


# ---------------------------------------------------------------- FFmpeg filters through PyAV


def test_filter_compare_pairs_frames_by_pts(carphone_pair):
    """FFmpeg's psnr filter, fed through media.filter_compare, equals numpy PSNR frame by frame."""
    refs, tests = carphone_pair
    out = list(media.filter_compare(refs, tests, "psnr", Fraction(30000, 1001)))
    assert len(out) == len(refs)
    for ref, test, meta in zip(refs, tests, out):
        for plane, mse in zip("yuv", metrics.frame_mse(ref, test)):
            assert float(meta[f"lavfi.psnr.psnr.{plane}"]) == pytest.approx(metrics.psnr(mse, 8), abs=1e-2)
    assert len({round(float(m["lavfi.psnr.psnr.y"]), 2) for m in out}) > 1  # frames differ: a shift would show


def test_xpsnr_refuses_a_tiny_picture_instead_of_crashing(carphone_pair):
    """Below 2025 luma samples vf_xpsnr's block size is 0 and FFmpeg divides by zero (SIGFPE): genpost
    refuses the filter there (evaluate then reports PSNR, XPSNR's own definition for that case)."""
    assert not metrics.xpsnr_weighted(48, 32) and metrics.xpsnr_weighted(64, 32)
    with pytest.raises(media.MediaError, match="xpsnr"):
        media.CompareFilter("xpsnr", 48, 32, 8, 25)
    out = list(media.filter_compare(*carphone_pair, "xpsnr", 25))  # 176x144 works
    assert len(out) == len(carphone_pair[0]) and all(20 < float(m["lavfi.xpsnr.xpsnr.y"]) < 60 for m in out)


def test_sequence_xpsnr_matches_the_ffmpeg_binary_summary(tmp_path):
    """Per-frame XPSNR from PyAV's filter, pooled by genpost, equals the ffmpeg 9 binary's summary line."""
    source = decode_all(CARPHONE)[:12]
    decoded = [to_bit_depth(f, 8) for f in decode_all(VVC / "carphone_176x144_29.97_ra_qp42.266", 30)[:12]]
    rate = Fraction(30000, 1001)
    per_frame = list(media.filter_compare(source, decoded, "xpsnr", rate))
    _y4m(tmp_path / "ref.y4m", source, rate)
    _y4m(tmp_path / "test.y4m", decoded, rate)
    proc = subprocess.run(
        [ffmpeg.executable(), "-hide_banner", "-nostdin", "-i", str(tmp_path / "ref.y4m"),
         "-i", str(tmp_path / "test.y4m"), "-lavfi", "xpsnr", "-f", "null", "-"],
        capture_output=True, text=True, check=True)  # fmt: skip
    summary = re.search(r"XPSNR\s+y: ([\d.]+)\s+u: ([\d.]+)\s+v: ([\d.]+)", proc.stderr)
    assert summary, proc.stderr
    for i, (plane, size) in enumerate(zip("yuv", [(176, 144), (88, 72), (88, 72)])):
        pooled = metrics.sequence_xpsnr([float(m[f"lavfi.xpsnr.xpsnr.{plane}"]) for m in per_frame], *size, 8)
        assert pooled == pytest.approx(float(summary.group(i + 1)), abs=2e-4)


def test_sequence_xpsnr_of_lossless_frames_is_capped():
    assert metrics.sequence_xpsnr([math.inf, math.inf], 176, 144, 8) == metrics.PSNR_CAP


def test_vmaf_neg_ranks_quality(bbb_pair, tmp_path):
    refs, tests = bbb_pair
    _y4m(tmp_path / "ref.y4m", refs)
    _y4m(tmp_path / "test.y4m", tests)
    same = ffmpeg.vmaf(tmp_path / "ref.y4m", tmp_path / "ref.y4m")
    worse = ffmpeg.vmaf(tmp_path / "test.y4m", tmp_path / "ref.y4m")
    assert same["model"] == "vmaf_v0.6.1neg" and len(worse["frames"]) == len(refs)
    assert same["mean"] > 95 and worse["mean"] < same["mean"] - 5


def test_ffmpeg_env_var_picks_the_binary(monkeypatch):
    bundled = ffmpeg.executable()
    monkeypatch.setenv(ffmpeg.ENV, bundled)
    assert ffmpeg.executable() == bundled and ffmpeg.version()
    monkeypatch.setenv(ffmpeg.ENV, "/nonexistent/ffmpeg")
    with pytest.raises(ffmpeg.FFmpegError, match="GENPOST_FFMPEG"):
        ffmpeg.executable()


# ---------------------------------------------------------------- perception metrics


def _import_without_torchvision(package: str, *modules: str):
    """Import ``package.module``s from an installed package without running its ``__init__`` when that
    fails because torchvision cannot load here (PyPI's torchvision is a CUDA build that does not import
    beside the CPU torch wheel; piq's ``__init__`` imports it for FID only, HaarPSI/FSIM never use it)."""
    try:
        importlib.import_module(package)
    except (ImportError, RuntimeError, OSError):
        spec = importlib.util.find_spec(package)
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules[package] = stub
    return [importlib.import_module(f"{package}.{m}") for m in modules]


@pytest.fixture(scope="module")
def piq_metrics():
    pytest.importorskip("torch")
    if importlib.util.find_spec("piq") is None:
        pytest.skip("piq is not installed (pip install -e '.[test]')")
    haarpsi_mod, fsim_mod = _import_without_torchvision("piq", "haarpsi", "fsim")
    return haarpsi_mod.haarpsi, fsim_mod.fsim


def _torch_image(rgb):
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]))


@pytest.mark.parametrize("pair", ["carphone_pair", "bbb_pair"])
def test_haarpsi_and_fsim_match_piq_on_real_frames(pair, request, piq_metrics):
    """The numpy ports equal piq 0.8 (float64 tensors) on decoded VTM frames at 176x144 and 416x240: HaarPSI to
    1e-9, FSIM to 1e-6 (its filter responses are computed in float32 for speed)."""
    piq_haarpsi, piq_fsim = piq_metrics
    refs, tests = request.getfixturevalue(pair)
    for ref, test in zip(refs[:2], tests[:2]):
        x, y = perceptual.metric_rgb(ref), perceptual.metric_rgb(test)
        want_h = piq_haarpsi(_torch_image(x), _torch_image(y), data_range=1.0).item()
        want_f = piq_fsim(_torch_image(x), _torch_image(y), data_range=1.0).item()
        assert perceptual.haarpsi(x, y) == pytest.approx(want_h, abs=1e-9)
        assert perceptual.fsim(x, y) == pytest.approx(want_f, abs=1e-6)  # filter responses in float32
        assert 0.3 < perceptual.haarpsi(x, y) < 1.0 and 0.5 < perceptual.fsim(x, y) < 1.0


@pytest.mark.parametrize("shape", [(37, 53, 3), (300, 520, 3)])
def test_haarpsi_and_fsim_match_piq_on_odd_and_pooled_sizes(shape, piq_metrics):
    """Odd sizes (HaarPSI's padding) and a picture FSIM first average-pools by 2 (min side 300 / 256)."""
    piq_haarpsi, piq_fsim = piq_metrics
    rng = np.random.default_rng(1)
    x = rng.random(shape)
    y = np.clip(x + 0.05 * rng.standard_normal(shape), 0, 1)
    assert perceptual.haarpsi(x, y) == pytest.approx(piq_haarpsi(_torch_image(x), _torch_image(y)).item(), abs=1e-9)
    assert perceptual.fsim(x, y) == pytest.approx(piq_fsim(_torch_image(x), _torch_image(y)).item(), abs=1e-6)
    assert perceptual.haarpsi(x, x) == pytest.approx(1.0) and perceptual.fsim(x, x) == pytest.approx(1.0)


def test_metric_rgb_is_the_bt601_limited_range_conversion():
    """Grey, black, white and the primaries of limited-range BT.601 land where the matrix puts them, at 8 and
    10 bits alike (10-bit values are not rounded to 8 bits)."""
    def frame(y, u, v, depth):
        shape = (4, 4)
        dt = np.uint8 if depth == 8 else np.uint16
        return Frame(np.full(shape, y, dt), np.full((2, 2), u, dt), np.full((2, 2), v, dt), bit_depth=depth)

    assert perceptual.metric_rgb(frame(16, 128, 128, 8)) == pytest.approx(0.0)
    assert perceptual.metric_rgb(frame(235, 128, 128, 8)) == pytest.approx(1.0)
    assert perceptual.metric_rgb(frame(126 * 4 + 2, 512, 512, 10))[0, 0] == pytest.approx([(126.5 - 16) / 219] * 3)
    red = perceptual.metric_rgb(frame(81, 90, 240, 8))[0, 0]  # BT.601 red
    assert red == pytest.approx([1.0, 0.0, 0.0], abs=0.01)
    red709 = perceptual.metric_rgb(frame(63, 102, 240, 8), ColorInfo(matrix=1))[0, 0]  # BT.709 red
    assert red709 == pytest.approx([1.0, 0.0, 0.0], abs=0.01)


# LPIPS / DISTS on locally generated random weights (no network): torchvision's layer layouts and names
ALEX_CONVS = {0: (64, 3, 11, 4, 2), 3: (192, 64, 5, 1, 2), 6: (384, 192, 3, 1, 1), 8: (256, 384, 3, 1, 1),
              10: (256, 256, 3, 1, 1)}  # fmt: skip
VGG_CONVS = {i: (cout, cin, 3, 1, 1) for i, cout, cin in [
    (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256), (14, 256, 256),
    (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512)]}  # fmt: skip


def _torchvision_features(torch, convs, pools, pool_kernel, length):
    """A ``features`` Sequential as torchvision builds it (inplace ReLU after each conv)."""
    layers = []
    for i in range(length):
        if i in convs:
            cout, cin, k, stride, pad = convs[i]
            layers.append(torch.nn.Conv2d(cin, cout, k, stride, pad))
        elif i in pools:
            layers.append(torch.nn.MaxPool2d(pool_kernel, 2))
        else:
            layers.append(torch.nn.ReLU(inplace=True))
    return torch.nn.Sequential(*layers)


@pytest.fixture(scope="module")
def random_hub(tmp_path_factory):
    """A torch hub cache holding AlexNet and VGG16 checkpoints of random weights, named as torchvision's."""
    torch = pytest.importorskip("torch")
    for package in ("lpips", "DISTS_pytorch"):
        if importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed (pip install -e '.[test]')")
    home = tmp_path_factory.mktemp("torch_home")
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    for name, convs in ((deepmetrics.ALEXNET_FILE, ALEX_CONVS), (deepmetrics.VGG16_FILE, VGG_CONVS)):
        state = {}
        for i, (cout, cin, k, _, _) in convs.items():
            state[f"features.{i}.weight"] = torch.randn(cout, cin, k, k, generator=gen) * (2.0 / (cin * k * k)) ** 0.5
            state[f"features.{i}.bias"] = torch.randn(cout, generator=gen) * 0.01
        state["classifier.1.weight"] = torch.zeros(4, 4)  # torchvision's files hold the classifier too
        torch.save(state, folder / name)
    return home


def test_lpips_and_dists_run_on_weights_in_the_hub_cache(random_hub, monkeypatch, carphone_pair):
    monkeypatch.setenv("TORCH_HOME", str(random_hub))
    scorers = deepmetrics.load()
    assert all(callable(s) for s in scorers.values()), scorers
    refs, tests = carphone_pair
    x, y = perceptual.metric_rgb(refs[0]), perceptual.metric_rgb(tests[0])
    noisy = np.clip(x + 0.1 * np.random.default_rng(0).standard_normal(x.shape), 0, 1)
    for name, score in scorers.items():
        assert score(x, x) == pytest.approx(0.0, abs=1e-5), name
        assert 0 < score(x, y) < score(x, noisy), name


def test_lpips_and_dists_say_why_they_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reasons = deepmetrics.load()
    assert "AlexNet backbone not found" in reasons["lpips"] and "VGG16 backbone not found" in reasons["dists"]
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / deepmetrics.ALEXNET_FILE).write_bytes(b"not a checkpoint")
    reason = deepmetrics.load(["lpips"])["lpips"]
    assert isinstance(reason, str) and reason.startswith("cannot load") and "\n" not in reason


def test_lpips_and_dists_equal_the_reference_packages(random_hub, monkeypatch, bbb_pair):
    """The same random backbones inside the lpips and DISTS_pytorch packages' own code (torchvision's model
    constructors stood in for by the same layouts loaded from the same files) give the same distances."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("scipy")
    pytest.importorskip("tqdm")
    ckpt = random_hub / "hub" / "checkpoints"

    def features(convs, pools, kernel, length, file):
        seq = _torchvision_features(torch, convs, pools, kernel, length)
        state = torch.load(ckpt / file, weights_only=True)
        seq.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("features.")})
        return types.SimpleNamespace(features=seq)

    alex = features(ALEX_CONVS, (2, 5, 12), 3, 13, deepmetrics.ALEXNET_FILE)
    vgg = features(VGG_CONVS, (4, 9, 16, 23, 30), 2, 31, deepmetrics.VGG16_FILE)
    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(alexnet=lambda **kw: alex, vgg16=lambda **kw: vgg)
    tv.transforms = types.SimpleNamespace()
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    for name in [m for m in sys.modules if m.split(".")[0] in ("lpips", "DISTS_pytorch")]:
        monkeypatch.delitem(sys.modules, name)
    lpips = importlib.import_module("lpips")
    dists_pt = importlib.import_module("DISTS_pytorch")
    reference = {"lpips": lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()}
    if not (Path(sys.prefix) / "weights.pt").is_file():
        pytest.skip("DISTS_pytorch loads its weights.pt from sys.prefix, which does not hold it")
    reference["dists"] = dists_pt.DISTS().eval()
    monkeypatch.setenv("TORCH_HOME", str(random_hub))
    ours = deepmetrics.load()
    refs, tests = bbb_pair
    for ref, test in zip(refs[:2], tests[:2]):
        x, y = perceptual.metric_rgb(ref), perceptual.metric_rgb(test)
        tx, ty = (torch.from_numpy(np.ascontiguousarray(p.transpose(2, 0, 1)[None], dtype=np.float32)) for p in (x, y))
        with torch.no_grad():
            want = {"lpips": reference["lpips"](tx, ty, normalize=True).item(), "dists": reference["dists"](tx, ty).item()}
        for name in want:
            assert ours[name](x, y) == pytest.approx(want[name], rel=1e-4, abs=1e-6), name
