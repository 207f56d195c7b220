"""The CLI's contract: one-line errors, documented exit codes, JSON on stdout, nothing partial left behind."""

from __future__ import annotations

import json
import os
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
def test_unknown_output_extension_is_exit_2(carphone, tmp_path, ext):
    """An output extension the command cannot write is bad usage (docs/cli.md), not unreadable input."""
    one_line_error(run("encode", carphone, "-o", tmp_path / f"out.{ext}" if ext else tmp_path / "out"), 2)


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


HELP_COMMANDS = [[], ["encode"], ["enhance"], ["inspect"], ["eval"], ["bench"], ["pipe"], ["batch"], ["preview"], ["plugin", "new"]]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "genpost")
def test_help_shows_switches_as_switches_names_arguments_and_takes_h(command):
    """Flags were shown as ``--json <bool>`` (``--json true`` is refused: they take no value), arguments as
    ``{source}``, and ``-h`` was refused."""
    env = {**os.environ, "COLUMNS": "200"}
    full = subprocess.run([sys.executable, "-m", "genpost.cli", *command, "--help"], capture_output=True, text=True, env=env)
    short = subprocess.run([sys.executable, "-m", "genpost.cli", *command, "-h"], capture_output=True, text=True, env=env)
    assert full.returncode == 0 and short.returncode == 0, full.stderr + short.stderr
    assert short.stdout == full.stdout
    assert "<bool>" not in full.stdout
    usage = next(line for line in full.stdout.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    if command == ["inspect"]:
        assert "[OPTIONS] INPUT" in usage and "--json " in full.stdout


def test_every_command_is_described_in_one_row_of_the_command_list():
    """eval's description broke mid-sentence over three rows of ``genpost --help``."""
    env = {**os.environ, "COLUMNS": "200"}
    listing = subprocess.run([sys.executable, "-m", "genpost.cli", "--help"], capture_output=True, text=True, env=env).stdout
    rows = [line.strip("│ ").split(None, 1) for line in listing.split("Commands")[1].splitlines()[1:] if line.startswith("│")]
    assert "eval" in [row[0] for row in rows if row]
    assert all(len(row) == 2 and row[1].rstrip().endswith(".") for row in rows), rows  # each description on its row


def test_inspect_warns_about_a_truncated_file(wiener_mkv, tmp_path):
    """A cut file reported "1 frames" and a bitrate over that frame without a word."""
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(wiener_mkv.read_bytes()[: wiener_mkv.stat().st_size // 3])
    text = run("inspect", cut)
    assert text.returncode == 0, text.stderr
    warnings = [line for line in text.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("genpost: warning: ") and "truncated" in warnings[0], text.stderr
    report = json.loads(run("inspect", cut, "--json").stdout)
    assert len(report["warnings"]) == 1 and "truncated" in report["warnings"][0]
    whole = run("inspect", wiener_mkv, "--json")
    assert whole.stderr == "" and json.loads(whole.stdout)["warnings"] == []
