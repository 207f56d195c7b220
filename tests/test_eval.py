"""genpost eval end to end on real clips: x265 ladder (few frames, 2 QPs) and the VTM streams as anchors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import CARPHONE, VVC, decode_all

from genpost import media
from genpost.errors import PipelineError
from genpost.eval import measure, metrics, perceptual, rd, testset
from genpost.jobs import pipeline
from genpost.types import StreamInfo

POINT_KEYS = {"qp", "kbps", "side_info_kbps", "psnr_y", "psnr_u", "psnr_v", "ms_ssim", "xpsnr", "vmaf_neg"}
TOP_KEYS = {"source", "plugin", "anchor", "genpost", "bd_rate", "versions", "never_worse"}
BD_KEYS = {"psnr_y", "ms_ssim", "xpsnr", "vmaf_neg"}
# a small lambda makes the wiener filter send side info on every clip, so its bits must show in the rate
FORCE_SIDE_INFO = {"wiener.lambda_scale": "0.1"}
LD = [VVC / f"carphone_176x144_29.97_ld_qp{qp}.266" for qp in (32, 42)]


def run(*args, env=None):
    cmd = [sys.executable, "-m", "genpost.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


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
    return rd.evaluate(CARPHONE, "wiener", (32, 42), preset="ultrafast", options=FORCE_SIDE_INFO, frames=6)


def test_x265_ladder_counts_every_side_info_bit(x265_result):
    result = x265_result
    check_shape(result)
    assert result["frames"] == 6 and all(p["side_info_kbps"] == 0 for p in result["anchor"])
    assert any(p["side_info_kbps"] > 0 for p in result["genpost"])
    for a, g in zip(result["anchor"], result["genpost"]):
        assert a["qp"] == g["qp"] and g["base_matches_anchor"]
        # the genpost stream is the anchor's bytes plus the SEI NAL units that carry the side info
        assert g["kbps"] == pytest.approx(a["kbps"] + g["side_info_kbps"], rel=1e-12)
    middle = result["genpost"][len(result["genpost"]) // 2]["default_output"]  # measured once per run
    assert middle["worse"] == [] and middle["coding"].endswith("lossless") and middle["psnr_y_output"] >= middle["psnr_y_input"]
    learned = {k: v for k, v in result["bd_rate"].items() if k in ("lpips", "dists", "cvvdp")}
    assert all(isinstance(v, float) for k, v in result["bd_rate"].items() if k not in learned)
    for name, value in learned.items():  # null exactly when the run says why (no weights on this machine)
        assert (value is None) == (name in result["unavailable"])


def test_x265_anchor_point_matches_an_independent_encode(x265_result, tmp_path):
    """Re-encode QP 42 by hand and measure with numpy: the anchor point's rate and PSNR are reproduced."""
    source = tmp_path / "six.y4m"
    measure.trim_to(CARPHONE, source, 6)
    plain = tmp_path / "plain.265"
    pipeline.encode(source, plain, media.EncoderSettings(qp=42, preset="ultrafast"))
    rate = 30000 / 1001
    point = x265_result["anchor"][1]
    assert point["kbps"] == pytest.approx(plain.stat().st_size * 8 * rate / 6 / 1000, rel=1e-12)
    psnr = metrics.sequence_psnr(decode_all(source), decode_all(plain, rate))
    assert point["psnr_y"] == pytest.approx(psnr["psnr_y"], abs=1e-9)


def test_eval_is_reproducible(x265_result):
    again = rd.evaluate(CARPHONE, "wiener", (32, 42), preset="ultrafast", options=FORCE_SIDE_INFO, frames=6)
    assert again["bd_rate"] == x265_result["bd_rate"]
    assert again["genpost"] == x265_result["genpost"]


def test_vtm_streams_as_anchor_match_their_manifest():
    """Rates and 8-bit PSNR of the VTM anchors equal the manifest's (made independently from VTM's log);
    genpost adds the side info as `encode --base` does, and every added byte counts in the rate."""
    result = rd.evaluate(CARPHONE, "wiener", streams=LD, options=FORCE_SIDE_INFO)
    check_shape(result)
    manifest = {s["file"]: s for s in json.loads((VVC / "manifest.json").read_text())["streams"]}
    for path, a, g in zip(LD, result["anchor"], result["genpost"]):
        entry = manifest[path.name]
        assert a["qp"] == g["qp"] == entry["qp"]
        assert a["kbps"] == pytest.approx(entry["kbps"], abs=1e-3)
        assert a["psnr_y"] == pytest.approx(entry["psnr8_y"], abs=1e-3)
        assert g["side_info_kbps"] > 0 and g["side_info_records"] > 0 and g["restored_by"] == ["wiener"]
        assert g["kbps"] == pytest.approx(a["kbps"] + g["side_info_kbps"], rel=1e-12)
    assert result["frames"] == 33 and result["anchor_kind"] == "external streams"
    assert result["decoder"] == rd.DECODER_USER


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
    assert rd.stream_qp(LD[0]) == 32
    named = tmp_path / "clip_QP37_ra.266"
    named.write_bytes(b"")
    assert rd.stream_qp(named) == 37
    assert rd.stream_qp(tmp_path / "clip.266") is None


# ---------------------------------------------------------------- test sets


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """Two short clips in a folder: carphone (8-bit 176x144) and the 10-bit VTM decode of BBB (416x240)."""
    folder = tmp_path_factory.mktemp("set")
    measure.trim_to(CARPHONE, folder / "carphone.y4m", 3)
    measure.trim_to(VVC / "bigbuckbunny_416x240_25_ra_qp27.266", folder / "bbb10.y4m", 3)
    return folder


def test_cli_eval_set_two_clips_two_plugins(clip_dir, tmp_path):
    """The must-show run: a folder of two clips x wiener and gan-enhance gives 4 runs and a summary with
    HaarPSI and FSIM numbers and LPIPS/DISTS keys (null with a reason: no weights in this torch hub cache)."""
    md, png = tmp_path / "table.md", tmp_path / "rd.png"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty_hub")}
    # gan-enhance's per-period content adaptation (up to 30 s of fine-tuning per mode) is not what this tests
    res = run("eval", clip_dir, "--plugin", "wiener", "--plugin", "gan-enhance", "--qp", "32,42", "--preset",
              "ultrafast", "--option", "gan-enhance.adapt=off", "--json", "--markdown", md, "--plot", png, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert {(Path(r["source"]).name, r["plugin"]) for r in result["runs"]} == {
        (clip, plugin) for clip in ("carphone.y4m", "bbb10.y4m") for plugin in ("wiener", "gan-enhance")
    }
    assert len(result["runs"]) == 4 and result["failures"] == []
    for r in result["runs"]:
        check_shape(r)
        assert r["bit_depth"] == (10 if "bbb10" in r["source"] else 8) and r["frames"] == 3
        for point in r["anchor"] + r["genpost"]:
            assert 0.3 < point["haarpsi"] <= 1 and 0.5 < point["fsim"] <= 1 and 0 <= point["vmaf"] <= 100
            assert point["lpips"] is None and point["dists"] is None
    # the anchor is shared: both plugins' runs of a clip hold the very same anchor points
    by_clip = {}
    for r in result["runs"]:
        by_clip.setdefault(r["source"], []).append(r["anchor"])
    assert all(a == b for a, b in by_clip.values())
    for plugin, entry in result["summary"].items():
        assert isinstance(entry["bd_rate"]["haarpsi"], float) and isinstance(entry["bd_rate"]["fsim"], float)
        assert entry["bd_rate"]["lpips"] is None and entry["bd_rate"]["dists"] is None
        mine = [r for r in result["runs"] if r["plugin"] == plugin]
        for key in ("haarpsi", "fsim", "psnr_y_mse"):
            assert entry["bd_rate"][key] == pytest.approx(sum(r["bd_rate"][key] for r in mine) / 2)
        for plane in "yuv":
            assert entry["losses"][plane] == sum(any(plane in v["worse"] for v in r["vs_anchor"]) for r in mine)
    assert "not found" in result["unavailable"]["lpips"] and "not found" in result["unavailable"]["dists"]
    # progress names clip, plugin and QP; --plot and --markdown say where they wrote
    assert any("carphone.y4m" in line and "gan-enhance" in line and "QP 42" in line for line in res.stderr.splitlines())
    written = [line.split("wrote ", 1)[1] for line in res.stderr.splitlines() if line.startswith("wrote ")]
    assert str(md) in written and len([w for w in written if w.endswith(".png")]) == 4
    for path in written:
        assert Path(path).stat().st_size > 0
    table = md.read_text()
    assert "| carphone.y4m | gan-enhance |" in table and "| gan-enhance | 2 |" in table and "LPIPS n/a" in table


def test_eval_set_reports_a_failing_clip_and_goes_on(tmp_path):
    broken = tmp_path / "broken.y4m"
    broken.write_bytes(b"YUV4MPEG2 W176 H144 F30000:1001 C420\nFRAME\n" + b"\x10" * 1000)  # a truncated frame
    good = tmp_path / "good.y4m"
    measure.trim_to(CARPHONE, good, 3)  # (2 frames: the x265 base .mp4 mux fails, a pipeline limit)
    messages = []
    result = testset.evaluate_set([str(broken), str(good)], ["wiener"], (32, 42), preset="ultrafast", progress=messages.append)
    assert [r["source"] for r in result["runs"]] == [str(good)]
    (failure,) = result["failures"]
    assert failure["source"] == str(broken) and failure["plugin"] is None and failure["error"]
    assert any("broken.y4m" in m and "failed" in m for m in messages)
    assert result["summary"]["wiener"]["clips"] == 1


def test_black_frames_psnr_both_ways(tmp_path):
    """Two black frames (coded perfectly by x265: MSE 0) before two real ones: the mean of per-frame PSNR
    counts them as 100 dB each; PSNR from the sequence's mean MSE counts them as the zero error they are."""
    real = decode_all(CARPHONE)[:2]
    black = [f.with_planes(np.full_like(f.y, 16), np.full_like(f.u, 128), np.full_like(f.v, 128)) for f in real]
    source = tmp_path / "black.y4m"
    info = StreamInfo(176, 144, 8, "rawvideo", Fraction(1001, 30000), Fraction(30000, 1001))
    out = media.OutputFile(source, info, media.EncoderSettings(codec="y4m"))
    for f in black + real:
        out.encode(f)
    out.close()
    coded = tmp_path / "coded.265"
    pipeline.encode(source, coded, media.EncoderSettings(qp=37, preset="ultrafast"))
    ref = measure.prepare_reference(source, tmp_path)
    point = measure.measure(ref, coded, tmp_path, Fraction(30000, 1001))
    decoded = decode_all(coded, Fraction(30000, 1001))
    mse = np.array([metrics.frame_mse(r, d) for r, d in zip(black + real, decoded)])
    assert mse[:2].max() == 0 and mse[2:, 0].min() > 0 and point["perfect_frames"] == 2
    per_frame = [metrics.psnr(m, 8) for m in mse[:, 0]]
    assert point["psnr_y"] == pytest.approx(np.mean(per_frame), abs=1e-9)
    assert point["psnr_y_mse"] == pytest.approx(10 * np.log10(255.0**2 / mse[:, 0].mean()), abs=1e-9)
    assert point["psnr_y"] - point["psnr_y_mse"] > 20  # the capped 100 dB frames dominate the per-frame mean


def _point(qp, kbps, y, u, v):
    return {"qp": qp, "kbps": kbps, "psnr_y_mse": y, "psnr_u_mse": u, "psnr_v_mse": v, "haarpsi": 0.8, "fsim": 0.9}


def test_vs_anchor_flags_each_worse_plane_and_the_summary_counts_them():
    anchor = [_point(32, 100.0, 35.0, 40.0, 41.0), _point(42, 40.0, 30.0, 37.0, 38.0)]
    genpost = [_point(32, 101.0, 35.2, 39.99, 41.0), _point(42, 40.5, 30.1, 37.0, 37.5)]
    deltas = rd.vs_anchor(anchor, genpost)
    assert [d["worse"] for d in deltas] == [["u"], ["v"]]  # an equal plane (V at QP 32) is not a loss
    assert deltas[0]["delta_psnr_y"] == pytest.approx(0.2) and deltas[1]["delta_psnr_v"] == pytest.approx(-0.5)
    bd = dict.fromkeys(rd.BD_METRICS, None)
    runs = [{"plugin": "p", "vs_anchor": deltas, "bd_rate": {**bd, "fsim": -2.0}},
            {"plugin": "p", "vs_anchor": rd.vs_anchor(anchor, anchor), "bd_rate": {**bd, "fsim": -4.0}}]  # fmt: skip
    summary = testset.summarize(runs, ["p"])["p"]
    assert summary["losses"] == {"y": 0, "u": 1, "v": 1} and summary["lost_points"] == {"y": 0, "u": 1, "v": 1}
    assert summary["bd_rate"]["fsim"] == pytest.approx(-3.0) and summary["bd_rate_clips"]["fsim"] == 2
    assert summary["bd_rate"]["lpips"] is None and summary["bd_rate_clips"]["lpips"] == 0


def test_a_plane_worse_at_equal_rate_is_flagged_though_every_qp_rose():
    """Side info that lifts every QP's PSNR a little but costs more than it buys: BD-rate above 0 is a loss."""
    anchor = [_point(q, r, y, 40.0, 41.0) for q, r, y in ((27, 400.0, 40.0), (32, 200.0, 37.0), (37, 100.0, 34.0), (42, 50.0, 31.0))]
    genpost = [_point(a["qp"], a["kbps"] * 1.08, a["psnr_y_mse"] + 0.01, 40.5, 41.5) for a in anchor]  # fmt: skip
    assert all(not d["worse"] for d in rd.vs_anchor(anchor, genpost))
    bd = rd.bd_rates(anchor, genpost)
    assert bd["psnr_y_mse"] > 0 and rd.bd_worse(bd) == ["y"]
    run = {"plugin": "p", "vs_anchor": rd.vs_anchor(anchor, genpost), "bd_rate": bd, "bd_worse": ["y"]}
    assert testset.summarize([run], ["p"])["p"]["bd_losses"] == {"y": 1, "u": 0, "v": 0}


def test_never_worse_is_judged_on_the_axis_the_user_chose():
    """fidelity: a plane's PSNR BD-rate above 0 breaks it; perception: a QP where CVVDP fell or flicker rose
    breaks it, and the PSNR cost is reported beside; a metric that did not run is said to be unmeasured."""
    anchor = [_point(q, r, y, 40.0, 41.0) for q, r, y in ((27, 400.0, 40.0), (32, 200.0, 37.0), (37, 100.0, 34.0))]
    for a, c, f in zip(anchor, (8.0, 7.0, 6.0), (0.010, 0.020, 0.030)):
        a.update(cvvdp=c, flicker=f)
    genpost = [dict(a, kbps=a["kbps"] * 1.02, psnr_y_mse=a["psnr_y_mse"] - 0.05) for a in anchor]
    genpost[1].update(cvvdp=7.2, flicker=0.019)
    genpost[2].update(cvvdp=5.9)  # CVVDP fell at QP 37
    bd, versus = rd.bd_rates(anchor, genpost), rd.vs_anchor(anchor, genpost)
    fidelity = rd.never_worse("fidelity", bd, versus)
    assert fidelity["axis"] == "fidelity" and not fidelity["holds"] and fidelity["failures"][0].startswith("psnr_y")
    perception = rd.never_worse("perception", bd, versus)
    assert not perception["holds"] and perception["failures"] == ["cvvdp -0.100 JOD at QP 37"]
    assert perception["psnr_bd_rate"]["y"] > 0 and perception["unmeasured"] == []
    genpost[2].update(cvvdp=6.1)
    ok = rd.never_worse("perception", bd, rd.vs_anchor(anchor, genpost))
    assert ok["holds"] and ok["failures"] == []
    for point in anchor + genpost:
        point.pop("cvvdp")
    blind = rd.never_worse("perception", bd, rd.vs_anchor(anchor, genpost))
    assert blind["unmeasured"] == ["cvvdp"] and blind["holds"]
    run = {"plugin": "p", "vs_anchor": versus, "bd_rate": bd, "never_worse": perception}
    assert testset.summarize([run], ["p"])["p"]["never_worse_broken"] == 1


def test_measure_perceptual_metrics_and_the_source_side_cache(tmp_path, monkeypatch):
    """HaarPSI/FSIM of a point equal the per-frame means computed directly; a second measurement, which
    takes the source's half of MS-SSIM, HaarPSI and FSIM from the cache, gives the very same numbers."""
    source = tmp_path / "three.y4m"
    measure.trim_to(CARPHONE, source, 3)
    coded = tmp_path / "coded.265"
    pipeline.encode(source, coded, media.EncoderSettings(qp=42, preset="ultrafast"))
    ref = measure.prepare_reference(source, tmp_path)
    first = measure.measure(ref, coded, tmp_path, Fraction(30000, 1001))
    assert len(ref.source_cache) == 3
    again = measure.measure(ref, coded, tmp_path, Fraction(30000, 1001))
    assert again == first
    monkeypatch.setattr(measure, "SOURCE_CACHE_BYTES", 0)  # nothing kept: every source half computed again
    uncached = measure.prepare_reference(source, tmp_path)
    assert measure.measure(uncached, coded, tmp_path, Fraction(30000, 1001)) == first and not uncached.source_cache
    frames = list(zip(decode_all(source), decode_all(coded, Fraction(30000, 1001))))
    assert first["ms_ssim"] == pytest.approx(np.mean([metrics.ms_ssim(s.y, d.y, 8) for s, d in frames]), abs=1e-12)
    pairs = [(perceptual.metric_rgb(s), perceptual.metric_rgb(d)) for s, d in frames]
    assert first["fsim"] == pytest.approx(np.mean([perceptual.fsim(*p) for p in pairs]), abs=1e-12)
    assert first["haarpsi"] == pytest.approx(np.mean([perceptual.haarpsi(*p) for p in pairs]), abs=1e-12)
    assert first["lpips"] is None and first["dists"] is None  # not requested here


@pytest.mark.parametrize(
    "make, extra, code",
    [
        (lambda d: [d / "none.y4m"], [], 3),  # a missing clip
        (lambda d: [d], [], 3),  # a folder with no video file
        (lambda d: [CARPHONE, CARPHONE], ["--stream", LD[0], "--stream", LD[1]], 2),  # --stream with a set
        (lambda d: [CARPHONE, CARPHONE], ["--qp", "32"], 2),  # one QP: no BD-rate, refused before any clip
    ],
)
def test_cli_eval_set_errors_come_before_any_work(tmp_path, make, extra, code):
    res = run("eval", *make(tmp_path), "--plugin", "wiener", *extra)
    assert res.returncode == code, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("genpost: error:"), res.stderr


# ---------------------------------------------------------------- points in worker processes


def test_points_in_worker_processes_give_the_same_numbers(clip_dir):
    """--jobs 2 runs the points of both clips in two spawned workers: the same runs as in this process
    (wiener's encoder is integer arithmetic), apart from the wall seconds."""
    one, two = (
        testset.evaluate_set(sorted(map(str, clip_dir.iterdir())), ["wiener"], (32, 42), preset="ultrafast", jobs=jobs,
                             options=FORCE_SIDE_INFO)  # fmt: skip
        for jobs in (1, 2)
    )
    for result in (one, two):
        for r in result["runs"]:
            del r["seconds"]
    assert one["runs"] == two["runs"] and len(one["runs"]) == 2 and one["failures"] == two["failures"] == []
    assert any(p["side_info_kbps"] > 0 for r in two["runs"] for p in r["genpost"])


def test_a_point_failing_in_a_worker_keeps_its_message_and_exit_code(tmp_path):
    """An external anchor shorter than the first fails in the worker that measures it; the error line and
    its exit code (2, a bad ladder) come back to this process."""
    short = tmp_path / "short.265"
    measure.trim_to(CARPHONE, tmp_path / "two.y4m", 2)
    pipeline.encode(tmp_path / "two.y4m", short, media.EncoderSettings(qp=42, preset="ultrafast"))
    with pytest.raises(PipelineError) as caught:
        rd.evaluate(CARPHONE, "wiener", streams=[LD[0], short], fps=Fraction(30000, 1001), jobs=2)
    assert caught.value.exit_code == 2 and "give streams of one length" in str(caught.value)


def test_cli_jobs_must_not_be_negative():
    res = run("eval", CARPHONE, "--plugin", "wiener", "--jobs", "-1")
    assert res.returncode == 2 and "--jobs" in res.stderr and "Traceback" not in res.stderr
