"""genpost eval end to end on real clips: x265 ladder (few frames, 2 QPs) and the VTM streams as anchors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import CARPHONE, VVC, decode_all

from genpost import evaluate, media, metrics, pipeline

POINT_KEYS = {"qp", "kbps", "side_info_kbps", "psnr_y", "psnr_u", "psnr_v", "ms_ssim", "xpsnr", "vmaf_neg"}
TOP_KEYS = {"source", "plugin", "anchor", "genpost", "bd_rate", "versions"}
BD_KEYS = {"psnr_y", "ms_ssim", "xpsnr", "vmaf_neg"}
# a small lambda makes the wiener filter send side info on every clip, so its bits must show in the rate
FORCE_SIDE_INFO = {"wiener.lambda_scale": "0.1"}
LD = [VVC / f"carphone_176x144_29.97_ld_qp{qp}.266" for qp in (32, 42)]


def run(*args):
    return subprocess.run([sys.executable, "-m", "genpost.cli", *map(str, args)], capture_output=True, text=True)


def check_shape(result):
    assert TOP_KEYS <= result.keys() and BD_KEYS <= result["bd_rate"].keys()
    assert len(result["anchor"]) == len(result["genpost"]) >= 2
    for point in result["anchor"] + result["genpost"]:
        assert POINT_KEYS <= point.keys()
        assert 15 < point["psnr_y"] < 60 and 15 < point["xpsnr"] < 60
        assert 0.5 < point["ms_ssim"] < 1 and 0 <= point["vmaf_neg"] <= 100
    assert {"av", "ffmpeg_binary", "libvmaf", "vmaf_model", "genpost"} <= result["versions"].keys()


@pytest.fixture(scope="module")
def x265_result():
    return evaluate.evaluate(CARPHONE, "wiener", (32, 42), "ultrafast", options=FORCE_SIDE_INFO, frames=6)


def test_x265_ladder_counts_every_side_info_bit(x265_result):
    result = x265_result
    check_shape(result)
    assert result["frames"] == 6 and all(p["side_info_kbps"] == 0 for p in result["anchor"])
    assert any(p["side_info_kbps"] > 0 for p in result["genpost"])
    for a, g in zip(result["anchor"], result["genpost"]):
        assert a["qp"] == g["qp"] and g["base_matches_anchor"]
        # the genpost stream is the anchor's bytes plus the SEI NAL units that carry the side info
        assert g["kbps"] == pytest.approx(a["kbps"] + g["side_info_kbps"], rel=1e-12)
    learned = {k: v for k, v in result["bd_rate"].items() if k in ("lpips", "dists")}
    assert all(isinstance(v, float) for k, v in result["bd_rate"].items() if k not in learned)
    for name, value in learned.items():  # null exactly when the run says why (no weights on this machine)
        assert (value is None) == (name in result["unavailable"])


def test_x265_anchor_point_matches_an_independent_encode(x265_result, tmp_path):
    """Re-encode QP 42 by hand and measure with numpy: the anchor point's rate and PSNR are reproduced."""
    source = tmp_path / "six.y4m"
    evaluate._trim(CARPHONE, source, 6)
    plain = tmp_path / "plain.265"
    pipeline.encode(source, plain, media.EncoderSettings(qp=42, preset="ultrafast"))
    rate = 30000 / 1001
    point = x265_result["anchor"][1]
    assert point["kbps"] == pytest.approx(plain.stat().st_size * 8 * rate / 6 / 1000, rel=1e-12)
    psnr = metrics.sequence_psnr(decode_all(source), decode_all(plain, rate))
    assert point["psnr_y"] == pytest.approx(psnr["psnr_y"], abs=1e-9)


def test_eval_is_reproducible(x265_result):
    again = evaluate.evaluate(CARPHONE, "wiener", (32, 42), "ultrafast", options=FORCE_SIDE_INFO, frames=6)
    assert again["bd_rate"] == x265_result["bd_rate"]
    assert again["genpost"] == x265_result["genpost"]


def test_vtm_streams_as_anchor_match_their_manifest():
    """Rates and 8-bit PSNR of the VTM anchors equal the manifest's (made independently from VTM's log);
    the plugin's records and their SEI framing are added to each stream's rate."""
    result = evaluate.evaluate(CARPHONE, "wiener", streams=LD, options=FORCE_SIDE_INFO)
    check_shape(result)
    manifest = {s["file"]: s for s in json.loads((VVC / "manifest.json").read_text())["streams"]}
    for path, a, g in zip(LD, result["anchor"], result["genpost"]):
        entry = manifest[path.name]
        assert a["qp"] == g["qp"] == entry["qp"]
        assert a["kbps"] == pytest.approx(entry["kbps"], abs=1e-3)
        assert a["psnr_y"] == pytest.approx(entry["psnr8_y"], abs=1e-3)
        assert g["side_info_kbps"] > 0 and g["side_info_records"] > 0
        assert g["kbps"] == pytest.approx(a["kbps"] + g["side_info_kbps"], rel=1e-12)
    assert result["frames"] == 33 and result["anchor_kind"] == "external streams"


def test_cli_eval_json_and_plot(tmp_path):
    png = tmp_path / "rd.png"
    res = run("eval", CARPHONE, "--plugin", "wiener", "--qp", "32,42", "--preset", "ultrafast", "--frames", "4",
              "--json", "--plot", png)  # fmt: skip
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)  # stdout holds the JSON only; progress went to stderr
    check_shape(result)
    assert "QP 32" in res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args, code",
    [
        (["--qp", "32"], 2),  # one point has no BD-rate
        (["--qp", "32,x"], 2),
        (["--qp", "32,42", "--stream", LD[0]], 2),
        (["--stream", LD[0], "--stream", LD[1], "--frames", "3"], 2),
        (["--plugin", "nosuch"], 5),
    ],
)
def test_cli_eval_errors(args, code):
    cmd = ["eval", CARPHONE] + (["--plugin", "wiener"] if "--plugin" not in args else []) + args
    res = run(*cmd)
    assert res.returncode == code, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("genpost: error:"), res.stderr


def test_stream_qp_from_manifest_then_name(tmp_path):
    assert evaluate.stream_qp(LD[0]) == 32
    named = tmp_path / "clip_QP37_ra.266"
    named.write_bytes(b"")
    assert evaluate.stream_qp(named) == 37
    assert evaluate.stream_qp(tmp_path / "clip.266") is None
