"""--target fidelity|perception: one job option every plugin's RD choice reads through genpost.learned.blocks;
fidelity (the default) adds nothing, so its results are exactly those of a job without the flag."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import CARPHONE

from genpost import Context, Frame
from genpost.learned import blocks
from genpost.options import OptionError, validate
from genpost.types import StreamInfo

INFO = StreamInfo(width=64, height=64, bit_depth=8, codec="hevc", time_base=None, rate=None)


def test_context_target_defaults_to_fidelity_and_reads_the_job_option():
    assert Context(stream=INFO).target == "fidelity"
    assert Context(stream=INFO, options={"target": "perception"}).target == "perception"


def test_the_job_option_is_declared_once_and_checked():
    validate({"target": "perception"}, {})
    with pytest.raises(OptionError, match="fidelity, perception"):
        validate({"target": "beauty"}, {})


def test_perceptual_weight_follows_the_target_unless_the_plugin_sets_its_own():
    fid, per = Context(stream=INFO), Context(stream=INFO, options={"target": "perception"})
    assert blocks.perceptual_weight(fid) == 0.0
    assert blocks.perceptual_weight(per) == blocks.PERCEPTION_MU
    assert blocks.perceptual_weight(fid, 3.0) == blocks.perceptual_weight(per, 3.0) == 3.0


def test_the_perceptual_distortion_charges_lost_texture_that_sse_barely_sees():
    rng = np.random.default_rng(0)
    y = (128 + 20 * rng.standard_normal((64, 64))).clip(0, 255).astype(np.uint8)
    flat = np.full((32, 32), 128, np.uint8)
    src = Frame(y, flat, flat)
    blurred = Frame(np.full_like(y, int(y.mean())), flat, flat)  # all texture gone
    noisy = Frame(np.clip(128 + 20 * rng.standard_normal((64, 64)), 0, 255).astype(np.uint8), flat, flat)
    # per SSE the blur is better than texture of the right energy in the wrong place ...
    assert blocks.plane_distortion(src, blurred)[0] < blocks.plane_distortion(src, noisy)[0]
    # ... the perceptual term charges the blur for the contrast it lost, the noise almost nothing
    assert blocks.texture_loss(y, blurred.y) > 10 * blocks.texture_loss(y, noisy.y)
    np.testing.assert_array_equal(blocks.plane_distortion(src, noisy, 0.0), blocks.plane_distortion(src, noisy))


@pytest.mark.parametrize("target, code", [("perception", 0), ("beauty", 2)])
def test_encode_takes_target(tmp_path, target, code):
    out = tmp_path / "o.mkv"
    r = subprocess.run([sys.executable, "-m", "genpost.cli", "encode", str(CARPHONE), "-o", str(out), "--qp", "40",
                        "--preset", "ultrafast", "--plugin", "wiener", "--target", target, "-q"],
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == code, r.stderr
    assert out.exists() == (code == 0)
