"""genpost eval measures the user's flow: `encode --plugin P` (default carriage), then `enhance` with no plugin
named, which runs what the stream says. `--force-plugin` is the other thing, and says so."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest
from conftest import CARPHONE, decode_all

from genpost import PostProcessor
from genpost.cli import commands
from genpost.eval import measure, metrics, rd
from genpost.jobs import pipeline
from genpost.plugins import Registering, in_process_plugin

QPS = (32, 42)
USER_QP = 42
FRAMES = 4


def run(*args):
    res = subprocess.run([sys.executable, "-m", "genpost.cli", *map(str, args)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("flow") / "clip.y4m"
    measure.trim_to(CARPHONE, path, FRAMES)
    return path


def user_flow(clip, folder, plugin, options, carriage=None):
    """The commands a user types, then genpost's own PSNR of the result against the source."""
    coded, out = folder / "coded.mkv", folder / "out.y4m"
    opts = [a for k, v in options.items() for a in ("--option", f"{k}={v}")]
    extra = ["--carriage", carriage] if carriage else []
    run("encode", clip, "-o", coded, "--qp", USER_QP, "--preset", "ultrafast", "--plugin", plugin, *opts, *extra, "-q")
    run("enhance", coded, "-o", out, "-q")  # no --plugin, no --option: what the stream says
    return metrics.sequence_psnr(decode_all(clip), decode_all(out))


@pytest.mark.parametrize(
    "plugin, options, carriage",
    [
        ("wiener", {"wiener.lambda_scale": "0.1"}, None),  # records on most frames
        ("gan-enhance", {"gan-enhance.adapt": "off"}, None),
        # the stream declares gan-enhance with its default-mode options (strength 1): enhance runs them
        ("gan-enhance", {"gan-enhance.adapt": "off", "gan-enhance.strength": "1"}, "nnpfc"),
    ],
    ids=["wiener", "gan-enhance", "gan-enhance-nnpfc-strength1"],
)
def test_eval_point_is_the_user_flow(clip, tmp_path, plugin, options, carriage):
    """The PSNR of `encode --plugin P` then `enhance` (no plugin named) equals eval's genpost point at that QP."""
    kw = {"carriage": carriage} if carriage else {}
    result = rd.evaluate(clip, plugin, QPS, preset="ultrafast", options=options, **kw)
    assert result["decoder"] == rd.DECODER_USER
    assert result["carriage"] == (carriage or pipeline.DEFAULT_CARRIAGE)
    point = next(p for p in result["genpost"] if p["qp"] == USER_QP)
    anchor = next(p for p in result["anchor"] if p["qp"] == USER_QP)
    user = user_flow(clip, tmp_path, plugin, options, carriage)
    for plane in "yuv":
        assert point[f"psnr_{plane}"] == pytest.approx(user[f"psnr_{plane}"], abs=1e-6)
    assert point["base_matches_anchor"] and point["scores_of_anchor"] == (point["restored_by"] == [])
    if plugin == "wiener":  # its records restore something the anchor lacks
        assert point["restored_by"] == [plugin] and point["psnr_y"] != anchor["psnr_y"]
    if carriage == "nnpfc":  # declared and activated (here its records chose the level: off at QP 42)
        assert point["restored_by"] == [plugin] and point["side_info_kbps"] > 0


class _Brighten(PostProcessor):
    """Sends nothing; its default mode adds 1 to every luma sample (visible in every metric)."""

    name, version, api_version = "test-brighten", "1", 1

    def restore(self, decoded, payload, ctx):
        y = np.minimum(decoded.y.astype(np.int32) + 1, decoded.max_value).astype(decoded.dtype)
        return decoded.with_planes(y, decoded.u, decoded.v)


class _Quiet(_Brighten):
    """Has a side-info format but no default mode (a frame without its record is "off") and never sends a
    record: the encoder chose off everywhere, so its stream carries nothing, not even a chain declaration
    (nothing is lost without one); forced, it brightens."""

    name, side_info = "test-quiet", "test-quiet/1"
    default_mode = False



METRIC_KEYS = ("kbps", "psnr_y", "psnr_u", "psnr_v", "psnr_y_mse", "ms_ssim", "xpsnr", "vmaf", "vmaf_neg", "haarpsi", "fsim")


def test_no_side_info_at_all_gives_the_anchor_and_forcing_is_named(clip, monkeypatch):
    """A stream with no side info (no record, no declaration: the plugin sent nothing and has no default
    mode) restores to its base, so eval's point is the anchor's, metric for metric, whatever the plugin would
    do when forced; measured (not only reused from the anchor, which eval does for such points).
    --force-plugin runs it anyway, and the run says so."""
    with in_process_plugin("test-quiet", Registering(_Quiet)):
        user = rd.evaluate(clip, "test-quiet", QPS, preset="ultrafast", carriage="sei")
        forced = rd.evaluate(clip, "test-quiet", QPS, preset="ultrafast", carriage="sei", force_plugin=True)
        monkeypatch.setattr(rd, "REUSE_ANCHOR_SCORES", False)
        measured = rd.evaluate(clip, "test-quiet", QPS, preset="ultrafast", carriage="sei")
    assert forced["decoder"] == rd.DECODER_FORCED and user["decoder"] == rd.DECODER_USER
    for a, g, m, f in zip(user["anchor"], user["genpost"], measured["genpost"], forced["genpost"]):
        assert g["side_info_kbps"] == 0 and g["side_info_records"] == 0 and g["restored_by"] == []
        assert g["base_matches_anchor"] and g["scores_of_anchor"] and not m["scores_of_anchor"]
        for key in METRIC_KEYS:
            assert g[key] == a[key] == m[key], key
        assert f["restored_by"] == ["test-quiet"] and f["psnr_y"] != a["psnr_y"] and not f["scores_of_anchor"]
    assert all(v is None or abs(v) < 1e-9 for v in user["bd_rate"].values())


@pytest.mark.parametrize("carriage", ["sei", "nnpfc"])
def test_a_declared_chain_runs_as_declared(clip, carriage):
    """The stream declares the plugin (no side info of its own, a default mode: `sei` a chain record at
    each keyframe, `nnpfc` an NNPFC activated on every picture), so the user's enhance runs it, and eval's
    point equals the forced one, at the declaration's rate."""
    with in_process_plugin("test-brighten", Registering(_Brighten)):
        user = rd.evaluate(clip, "test-brighten", QPS, preset="ultrafast", carriage=carriage)
        forced = rd.evaluate(clip, "test-brighten", QPS, preset="ultrafast", carriage=carriage, force_plugin=True)
    for a, g, f in zip(user["anchor"], user["genpost"], forced["genpost"]):
        assert g["restored_by"] == ["test-brighten"] and g["base_matches_anchor"]
        assert g["side_info_kbps"] > 0 and g["kbps"] == pytest.approx(a["kbps"] + g["side_info_kbps"], rel=1e-12)
        for key in METRIC_KEYS:
            assert g[key] == f[key], key


def test_eval_uses_the_encoders_default_carriage():
    """eval's default carriage is `genpost encode`'s, so its points stay the user's flow if that changes."""
    defaults = {
        name: inspect.signature(fn).parameters["carriage"].default.default for name, fn in (("encode", commands.encode), ("eval", commands.eval_))
    }
    assert defaults == {"encode": pipeline.DEFAULT_CARRIAGE, "eval": pipeline.DEFAULT_CARRIAGE}
    assert inspect.signature(rd.evaluate).parameters["carriage"].default == pipeline.DEFAULT_CARRIAGE


def test_cli_eval_refuses_a_carriage_a_raw_stream_cannot_hold(clip):
    res = subprocess.run(
        [sys.executable, "-m", "genpost.cli", "eval", str(clip), "--plugin", "wiener", "--carriage", "sidecar"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 2 and "--carriage" in res.stderr, res.stderr
