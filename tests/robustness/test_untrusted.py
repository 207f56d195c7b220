"""Untrusted parts: weights only from sha256-pinned safetensors/ONNX, pickles refused; a plugin that raises
is named and skipped or fails the job per --on-plugin-error; a wrongly-shaped frame is caught."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import CARPHONE, decode_all

from genpost import PostProcessor, WeightsFile
from genpost.learned import weights

from .conftest import ROOT, cli, one_line_error, snapshot

ONNX = ROOT / "data" / "add_one.onnx"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def tensors_file(tmp_path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "net.safetensors"
    rng = np.random.default_rng(0)
    save_file({"conv.weight": rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "conv.bias": np.arange(8, dtype=np.float32)}, str(path))
    return path


def test_safetensors_load_after_the_sha256_matches(tensors_file):
    tensors = weights.load_safetensors(tensors_file, sha(tensors_file))
    assert tensors["conv.weight"].shape == (8, 1, 3, 3) and list(tensors["conv.bias"]) == list(range(8))


def test_a_changed_byte_fails_the_sha256(tensors_file, tmp_path):
    expected = sha(tensors_file)
    data = bytearray(tensors_file.read_bytes())
    data[-1] ^= 1
    tensors_file.write_bytes(bytes(data))
    with pytest.raises(weights.WeightsError, match="does not match") as info:
        weights.load_safetensors(tensors_file, expected)
    assert info.value.exit_code == 5


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".pkl", ".ckpt", ".bin"])
def test_pickle_checkpoints_are_refused_by_name(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    with pytest.raises(weights.WeightsError, match="refused"):
        weights.read_verified(path, sha(path))


def test_a_pickle_named_safetensors_is_refused_by_content(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
    with pytest.raises(weights.WeightsError, match="pickle"):
        weights.load_safetensors(path, sha(path))
    zipped = tmp_path / "ckpt.safetensors"  # the layout torch.save writes
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
    with pytest.raises(weights.WeightsError, match="pickle"):
        weights.load_safetensors(zipped, sha(zipped))


def test_a_damaged_safetensors_header_is_a_clean_error(tensors_file):
    tensors_file.write_bytes(b"\xff" * 8 + tensors_file.read_bytes()[8:])
    with pytest.raises(weights.WeightsError, match="not a valid safetensors"):
        weights.load_safetensors(tensors_file, sha(tensors_file))


def test_missing_file_and_missing_sha(tmp_path, tensors_file):
    with pytest.raises(weights.WeightsError, match="cannot read"):
        weights.load_safetensors(tmp_path / "nope.safetensors", "0" * 64)
    with pytest.raises(weights.WeightsError, match="no valid sha256"):
        weights.load_safetensors(tensors_file, "")


def test_onnx_session_from_verified_bytes(tmp_path):
    pytest.importorskip("onnxruntime")
    session = weights.onnx_session(ONNX, sha(ONNX))
    (y,) = session.run(None, {"x": np.arange(3, dtype=np.float32)})
    assert y.tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(weights.WeightsError, match="does not match"):
        weights.onnx_session(ONNX, "0" * 64)


def test_plugins_load_the_weights_they_declare(tensors_file):
    class Net(PostProcessor):
        name = "net"
        weights = (WeightsFile(str(tensors_file), sha(tensors_file)), WeightsFile(str(ONNX), sha(ONNX)))

    assert set(weights.load(Net(), "net.safetensors")) == {"conv.weight", "conv.bias"}
    with pytest.raises(weights.WeightsError, match="give a name"):
        weights.load(Net())
    Net.weights = (WeightsFile("net.safetensors", sha(tensors_file)),)  # relative: inside the plugin package
    assert weights.resolve(Net, Net.weights[0]) == Path(__file__).parent / "net.safetensors"


def test_importing_weights_imports_no_ml_framework():
    code = "import sys, genpost.learned.weights; print(sorted(m for m in ('torch', 'safetensors', 'onnxruntime') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


# ---------------------------------------------------------------- plugins that misbehave


@pytest.fixture(scope="module")
def reference(probe_mkv, tmp_path_factory):
    """The base decode and a clean restoration of the probe stream."""
    out = tmp_path_factory.mktemp("ref") / "ref.mkv"
    result = cli("enhance", probe_mkv, "-o", out, "--codec", "ffv1", "-q", probe=True)
    assert result.returncode == 0, result.stderr
    return decode_all(probe_mkv), decode_all(out)


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.planes, b.planes))


def test_a_raising_plugin_is_skipped_for_that_frame_and_named(probe_mkv, reference, tmp_path):
    base, restored = reference
    out = tmp_path / "out.mkv"
    result = cli("enhance", probe_mkv, "-o", out, "--codec", "ffv1", "--json", "-q", env={"GENPOST_PROBE_RAISE_AT": "3,7"}, probe=True)
    assert result.returncode == 0, result.stderr
    assert "plugin probe raised on 2 frames" in result.stderr and "RuntimeError" in result.stderr
    stats = json.loads(result.stdout)["per_plugin"]["probe"]
    assert stats["errors"] == 2 and stats["frames"] == 33
    frames = decode_all(out)
    assert len(frames) == 33
    for i, f in enumerate(frames):
        assert _same(f, base[i] if i in (3, 7) else restored[i]), i
    assert not _same(restored[5], base[5])  # the probe does change frames it restores


def test_on_plugin_error_fail_ends_the_job_cleanly(probe_mkv, tmp_path):
    src = tmp_path / "in.mkv"
    shutil.copy(probe_mkv, src)
    before = snapshot(tmp_path)
    env = {"GENPOST_PROBE_RAISE_AT": "3,7"}
    result = cli("enhance", src, "-o", tmp_path / "out.mkv", "--on-plugin-error", "fail", "-q", env=env, probe=True)
    one_line_error(result, 6, "plugin probe", "frame 3", "RuntimeError")
    one_line_error(cli("enhance", src, "-o", tmp_path / "out.mkv", "--max-errors", "1", "-q", env=env, probe=True), 6, "max-errors")
    one_line_error(cli("enhance", src, "-o", tmp_path / "out.mkv", "--on-plugin-error", "maybe", "-q", probe=True), 2, "on-plugin-error")
    assert snapshot(tmp_path) == before


def test_encode_fails_on_a_raising_analyze_unless_told_to_skip(tmp_path):
    env = {"GENPOST_PROBE_ANALYZE_RAISE_AT": "5"}
    out = tmp_path / "out.mkv"
    one_line_error(cli("encode", CARPHONE, "-o", out, "--plugin", "probe", "-q", env=env, probe=True), 6, "probe", "frame 5")
    assert list(tmp_path.iterdir()) == []
    result = cli("encode", CARPHONE, "-o", out, "--plugin", "probe", "--on-plugin-error", "skip", "--max-errors", "1",
                 "--json", "--preset", "ultrafast", "-q", env=env, probe=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["plugin_errors"] == {"probe": 1} and report["frames_with_side_info"]["probe/1"] == 32


def test_a_wrongly_shaped_frame_is_a_contract_error_and_keeps_the_input(probe_mkv, reference, tmp_path):
    """A broken contract is a plugin error (skipped and counted, or fatal with --on-plugin-error fail),
    never a fallback: fallbacks count only payloads the plugin itself rejected."""
    base, restored = reference
    out = tmp_path / "out.mkv"
    result = cli("enhance", probe_mkv, "-o", out, "--codec", "ffv1", "--json", "-q", env={"GENPOST_PROBE_BAD_SHAPE_AT": "4"}, probe=True)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)["per_plugin"]["probe"]
    assert stats["fallbacks"] == 0 and stats["errors"] == 1 and "ContractError" in stats["first_error"]
    frames = decode_all(out)
    assert _same(frames[4], base[4]) and _same(frames[5], restored[5])


def test_only_allowed_entry_points_load(probe_mkv, tmp_path):
    result = cli("plugins", "--json", probe=True)
    assert {row["name"] for row in json.loads(result.stdout)} >= {"probe", "wiener"}
    result = cli("plugins", "--json", env={"GENPOST_LOAD_PLUGINS": "builtins"}, probe=True)
    assert {row["name"] for row in json.loads(result.stdout)} == {"wiener"}
    # side info for a plugin that is not allowed is reported, the base passes through
    result = cli("enhance", probe_mkv, "-o", tmp_path / "o.mkv", "-q", env={"GENPOST_LOAD_PLUGINS": "builtins"}, probe=True)
    assert result.returncode == 0 and "probe/1 found but no installed plugin reads it" in result.stderr


def test_a_plugin_that_fails_to_import_is_skipped_with_a_warning_and_named_when_asked_for(probe_mkv, tmp_path):
    dist = tmp_path / "site" / "genpost_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: genpost-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[genpost]\nbroken = genpost_module_that_is_not_there\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    result = cli("plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert "wiener" in {row["name"] for row in json.loads(result.stdout)}
    assert "genpost: warning: plugin 'broken' failed to load" in result.stderr and "Traceback" not in result.stderr
    result = cli("enhance", probe_mkv, "-o", tmp_path / "o.mkv", "--plugin", "broken", "-q", env=env)
    one_line_error(result, 5, "unknown plugin 'broken'", "failed to load", "genpost_module_that_is_not_there")
    assert not (tmp_path / "o.mkv").exists()
