"""Fixtures for the robustness suite: real streams (carphone through x265, the VTM .266 streams) and the
``probe`` test plugin, installed through a real entry point only while a test asks for it."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CARPHONE, VVC, ffmpeg

ROOT = Path(__file__).parent
PLUGINS = ROOT / "plugins"


@contextlib.contextmanager
def probe_installed():
    """Put the genpost-probe distribution (tests/robustness/plugins) on sys.path for the block."""
    sys.path.insert(0, str(PLUGINS))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(PLUGINS))
        importlib.invalidate_caches()


@pytest.fixture
def probe():
    with probe_installed():
        yield


def cli(*args, env: dict | None = None, probe: bool = False, timeout: float = 180) -> subprocess.CompletedProcess:
    """``genpost ARGS`` in a subprocess (``probe``: with the probe plugin installed)."""
    e = {k: v for k, v in os.environ.items() if k != "GENPOST_DEBUG" and not k.startswith("GENPOST_PROBE")}
    if probe:
        e["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), e.get("PYTHONPATH")) if p)
    e.update(env or {})
    cmd = [sys.executable, "-m", "genpost.cli", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> str:
    """The run failed with ``code`` and exactly one 'genpost: error:' line on stderr naming ``words``."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("genpost: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(line.startswith("genpost: warning:") for line in lines if line not in errors), result.stderr
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])
    return errors[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file in ``folder`` (hidden ones too) by name, with its sha256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def probe_encode(out: Path) -> Path:
    """carphone through x265 (QP 37, keyint 8) with a probe record in SEI on every frame, into ``out``
    (the container by its suffix)."""
    from genpost import media
    from genpost.jobs import pipeline

    with probe_installed():
        pipeline.encode(CARPHONE, out, media.EncoderSettings(qp=37, preset="fast", keyint=8), plugins=["probe"], carriage="sei")
    return out


@pytest.fixture(scope="session")
def probe_mkv(tmp_path_factory) -> Path:
    """``probe_encode`` in MKV."""
    return probe_encode(tmp_path_factory.mktemp("probe") / "probe.mkv")


@pytest.fixture(scope="session")
def probe_265(tmp_path_factory) -> Path:
    """``probe_encode`` as a raw HEVC stream."""
    return probe_encode(tmp_path_factory.mktemp("probe265") / "probe.265")


@pytest.fixture(scope="session")
def streams(tmp_path_factory, probe_mkv) -> dict[str, Path]:
    """Real coded streams to damage: x265 (with probe SEI) in MKV, MP4 and MPEG-TS."""
    folder = tmp_path_factory.mktemp("streams")
    out = {"x265.mkv": probe_mkv}
    for ext in ("mp4", "ts"):
        out[f"x265.{ext}"] = folder / f"x265.{ext}"
        ffmpeg("-i", str(probe_mkv), "-c", "copy", str(out[f"x265.{ext}"]))
    return out


VTM_RA = VVC / "carphone_176x144_29.97_ra_qp32.266"  # a VTM random-access stream (raw Annex-B, no timing)
