"""The CLI's contract: one-line errors, documented exit codes, JSON on stdout, nothing partial left behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args):
    return subprocess.run([sys.executable, "-m", "genpost.cli", *map(str, args)], capture_output=True, text=True)


def one_line_error(result, code):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("genpost: error:"), result.stderr
    assert "Traceback" not in result.stderr


def test_missing_input_is_exit_3(tmp_path):
    one_line_error(run("enhance", tmp_path / "nope.mkv", "-o", tmp_path / "out.mkv"), 3)


def test_garbage_input_is_exit_3_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    one_line_error(run("enhance", bad, "-o", tmp_path / "out.mkv"), 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]


def test_empty_input_is_exit_3(tmp_path):
    empty = tmp_path / "empty.y4m"
    empty.write_bytes(b"")
    one_line_error(run("encode", empty, "-o", tmp_path / "out.mkv"), 3)


def test_output_equal_to_input_is_exit_4(carphone, tmp_path):
    copy = tmp_path / "in.y4m"
    copy.write_bytes(carphone.read_bytes())
    one_line_error(run("enhance", copy, "-o", copy, "--plugin", "wiener"), 4)
    assert copy.read_bytes() == carphone.read_bytes()


def test_unknown_plugin_is_exit_5(carphone, tmp_path):
    result = run("encode", carphone, "-o", tmp_path / "out.mkv", "--plugin", "nosuch")
    one_line_error(result, 5)
    assert "nosuch" in result.stderr and not (tmp_path / "out.mkv").exists()


def test_bad_option_values_are_exit_2(carphone, tmp_path):
    one_line_error(run("encode", carphone, "-o", tmp_path / "o.mkv", "--qp", "30", "--crf", "20"), 2)
    one_line_error(run("encode", carphone, "-o", tmp_path / "o.mkv", "--bit-depth", "12"), 2)
    one_line_error(run("enhance", carphone, "-o", tmp_path / "o.mkv", "--fps", "abc"), 2)


@pytest.mark.parametrize("ext", ["avi", ""])
def test_unknown_output_extension_is_exit_3(carphone, tmp_path, ext):
    one_line_error(run("encode", carphone, "-o", tmp_path / f"out.{ext}" if ext else tmp_path / "out"), 3)


def test_encode_inspect_enhance_json(carphone, tmp_path):
    enc = tmp_path / "enc.mp4"
    result = run("encode", carphone, "-o", enc, "--qp", "27", "--plugin", "wiener", "--json", "--option", "wiener.lambda_scale=0.02")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 33 and report["carriage"] == "sei"
    info = json.loads(run("inspect", enc, "--json").stdout)
    assert info["video"]["codec"] == "hevc" and info["video"]["frames"] == 33
    fmt = info["side_info"]["formats"]["wiener/1"]
    assert fmt["bytes"] == report["side_info_bytes"]["wiener/1"] and fmt["kbps"] > 0
    out = tmp_path / "out.mkv"
    enh = run("enhance", enc, "-o", out, "--codec", "ffv1", "--json")
    assert enh.returncode == 0, enh.stderr
    assert json.loads(enh.stdout)["plugins"] == ["wiener"] and out.exists()


def test_the_readme_points_to_the_exit_code_table():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "docs/cli.md#exit-codes" in readme  # the one table; test_cli_contract.py checks it against the code
