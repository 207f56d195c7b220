"""genpost bench: JSON shape on a few real frames, both through the API and the CLI (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import CARPHONE, VVC

from genpost import bench

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
    assert res.returncode == 6 and res.stderr.startswith("genpost: error:") and "--fps" in res.stderr
    ok = run(
        "bench", raw, "--plugin", "none", "--frames", "2", "--preset", "ultrafast", "--fps", "30000/1001", "--json"
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["frames"] == 2
