"""genpost bench: JSON shape on a few real frames, both through the API and the CLI (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import CARPHONE, VVC

from genpost.eval import bench

KEYS = {"fps", "baseline_fps", "stages_ms", "peak_rss_mb", "frames", "plugin", "device", "versions"}
STAGES = {"decode", "to_model", "model", "from_model", "encode", "mux"}


def run(*args):
    return subprocess.run([sys.executable, "-m", "genpost.cli", *map(str, args)], capture_output=True, text=True)


def check(result, frames, plugin):
    assert KEYS <= result.keys() and STAGES <= result["stages_ms"].keys()
    assert result["frames"] == frames and result["plugin"] == plugin and result["device"] == "cpu"
    assert result["fps"] > 0 and result["baseline_fps"] > 0 and result["peak_rss_mb"] > 10
    assert all(v >= 0 for v in result["stages_ms"].values())
    assert result["stages_ms"]["encode"] > 0 and result["stages_ms"]["decode"] > 0
    # the stages are parts of the end-to-end time
    assert sum(result["stages_ms"].values()) <= 1000 / result["fps"] * 1.01


def test_bench_wiener_on_a_stream_with_side_info(wiener_mkv):
    result = bench.bench(wiener_mkv, "wiener", frames=4, preset="ultrafast", repeat=1)
    check(result, 4, "wiener")
    assert result["stages_ms"]["to_model"] == result["stages_ms"]["from_model"] == 0  # a numpy plugin


def test_cli_bench_json_plugin_none():
    res = run("bench", CARPHONE, "--plugin", "none", "--frames", "3", "--preset", "ultrafast", "--json")
    assert res.returncode == 0, res.stderr
    check(json.loads(res.stdout), 3, "none")


def test_cli_bench_raw_stream_needs_fps():
    raw = VVC / "carphone_176x144_29.97_ld_qp42.266"
    res = run("bench", raw, "--plugin", "none", "--frames", "2", "--preset", "ultrafast")
    assert res.returncode == 2 and res.stderr.startswith("genpost: error:") and "--fps" in res.stderr  # bad usage
    ok = run(
        "bench", raw, "--plugin", "none", "--frames", "2", "--preset", "ultrafast", "--fps", "30000/1001", "--json"
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["frames"] == 2


def test_a_learned_plugin_is_timed_restoring_not_as_the_identity(tmp_path):
    """On a stream without its side info gan-enhance's default mode leaves frames as decoded: bench timed
    that identity (cpu_overhead_ratio 0.99). It now runs the plugin's declared restoring mode and says so."""
    import pytest

    pytest.importorskip("genpost_gan_enhance")
    from genpost import media
    from genpost.jobs import pipeline

    base = tmp_path / "plain.mkv"
    pipeline.encode(CARPHONE, base, media.EncoderSettings(qp=37, preset="ultrafast"), plugins=[])
    forced = bench.bench(base, "gan-enhance", frames=3, preset="ultrafast", repeat=1)
    check(forced, 3, "gan-enhance")
    assert forced["options"] == {"gan-enhance.strength": "1"} and forced["options_from"] == "restoring_options"
    assert forced["frames_with_side_info"] == 0
    identity = bench.bench(base, "gan-enhance", frames=3, preset="ultrafast", repeat=1, options={"gan-enhance.strength": "0"})
    assert identity["options"] == {"gan-enhance.strength": "0"} and identity["options_from"] == "--option"
    network = forced["stages_ms"]["model"] + forced["stages_ms"]["to_model"] + forced["stages_ms"]["from_model"]
    nothing = identity["stages_ms"]["model"] + identity["stages_ms"]["to_model"] + identity["stages_ms"]["from_model"]
    assert network > 5 * nothing + 1, (network, nothing)  # the generator ran (~tens of ms a frame), not the identity


def test_every_plugins_restoring_mode_is_declared_options():
    from genpost.plugins import postprocessors

    for name, reg in postprocessors().items():
        declared = {o.name: o for o in reg.cls.options or ()}
        for key, value in reg.cls.restoring_options.items():
            assert key in declared, (name, key)
            declared[key].parse(value, name)
    learned = {"gan-enhance", "rectified-flow", "residual-diffusion", "syntax-diffusion"}
    for name in learned & postprocessors().keys():
        assert postprocessors()[name].cls.restoring_options, name  # a default mode that is the identity
