"""Mid-stream damage in real x265 and VTM streams: enhance keeps every frame and its timestamp, conceals
what the decoder loses, counts it, and fails cleanly only past --max-errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from conftest import decode_all

from genpost import media
from genpost.jobs import pipeline

from . import corrupt
from .conftest import VTM_RA

SEEDS = range(1, 9)


def _timestamps(path, fps=None):
    return [(f.pts, f.time_base) for f in decode_all(path, fps)]


@pytest.mark.parametrize("container", ["x265.mkv", "x265.mp4", "x265.ts"])
def test_bit_flips_in_pictures_lose_no_frame(streams, tmp_path, container):
    clean = streams[container]
    expected = _timestamps(clean)
    detected = 0
    for seed in SEEDS:
        bad = tmp_path / f"bad{seed}{clean.suffix}"
        corrupt.flip_in_packets(clean, bad, flips=4, seed=seed)
        out = tmp_path / f"out{seed}.mkv"
        report = pipeline.enhance(bad, out, media.EncoderSettings(codec="ffv1"), plugins=["none"])
        frames = decode_all(out)
        damage = report.decode
        assert report.frames == len(frames)
        if container == "x265.ts" and len(frames) != len(expected):
            # FFmpeg's HEVC parser re-splits TS payloads: a hit on a slice header can merge two pictures
            # into one packet, which no timestamp reveals. Never silent, though: the damage is reported.
            assert damage["frames"] > 0
            continue
        assert len(frames) == len(expected)  # frames lost: 0
        with media.InputFile(bad) as inp:  # timestamps: the input's, exactly
            inp.max_errors = None
            got = [(f.pts, f.time_base) for f in inp.frames()]
        if container == "x265.ts":  # a picture whose timestamp left with a merged packet gets it from the cadence
            assert all(abs(g[0] * g[1] - e[0] * e[1]) <= Fraction(1, 100) for g, e in zip(got, expected))
        else:
            assert got == expected
        assert damage["frames"] == damage["concealed"] + damage["corrupt"] + damage["lost"]
        # TS re-splitting (above) can also leave a picture with its neighbour's timestamp: it is dropped and
        # counted as lost, and its slot concealed, so the frame count and timing still hold
        assert damage["lost"] == 0 or container == "x265.ts"
        detected += damage["concealed"]
        if damage["frames"]:
            assert any("damaged input" in w for w in report.warnings)
            with pytest.raises(media.MediaError, match="max-errors 0"):
                pipeline.enhance(bad, tmp_path / "strict.mkv", media.EncoderSettings(codec="ffv1"), plugins=["none"],
                                 max_errors=0)
            assert not (tmp_path / "strict.mkv").exists()
    assert detected > 0  # the sweep did hit pictures the decoder could not decode


def _damaged(clean, folder, kind: str):
    """Bit-flip copies of ``clean`` (seeds 1..49) until decoding one shows ``kind`` damage (a
    ``damage`` field such as "concealed" or "frames"): (the copy, its frames, its damage)."""
    bad = folder / "bad.mkv"
    for seed in range(1, 50):
        corrupt.flip_in_packets(clean, bad, flips=4, seed=seed)
        with media.InputFile(bad) as inp:
            inp.max_errors = None
            frames = list(inp.frames())
        if getattr(inp.damage, kind):
            return bad, frames, inp.damage
    pytest.fail(f"no seed produced {kind} damage")


def test_a_concealed_frame_repeats_the_previous_picture(streams, tmp_path):
    bad, frames, damage = _damaged(streams["x265.mkv"], tmp_path, "concealed")
    first = damage.first
    assert "could not be decoded" in first or "rejected" in first
    repeats = [i for i in range(1, len(frames)) if all(np.array_equal(a, b) for a, b in zip(frames[i].planes, frames[i - 1].planes))]
    assert len(repeats) >= damage.concealed
    assert [f.index for f in frames] == list(range(len(frames)))


def test_encode_is_strict_unless_told(streams, tmp_path):
    bad, _, damage = _damaged(streams["x265.mkv"], tmp_path, "frames")
    n = damage.frames
    settings = media.EncoderSettings(qp=37, preset="ultrafast")
    with pytest.raises(media.MediaError, match="damaged frames"):
        pipeline.encode(bad, tmp_path / "strict.mkv", settings)
    report = pipeline.encode(bad, tmp_path / "tolerant.mkv", settings, max_errors=n)
    assert report.frames == 33 and report.decode["frames"] == n and report.warnings


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_raw_vvc_damage_is_counted_not_hidden(tmp_path, seed):
    """Raw Annex-B has no timestamps: a lost picture cannot be placed, so it is counted as lost."""
    bad = tmp_path / "bad.266"
    corrupt.flip_bytes(VTM_RA, bad, 20, seed=seed)
    out = tmp_path / "out.mkv"
    try:
        report = pipeline.enhance(bad, out, media.EncoderSettings(codec="ffv1"), plugins=["none"], fps="30000/1001")
    except media.MediaError as exc:  # nothing decodable at all is an input error, not a crash
        assert "decodable" in str(exc)
        assert not out.exists()
        return
    assert len(decode_all(out)) == report.frames
    assert report.frames == 33 or report.decode["frames"] > 0  # a shortfall is never silent


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
@pytest.mark.parametrize("container", ["x265.mkv", "x265.ts"])
def test_truncation_is_reported(streams, tmp_path, container, fraction):
    clean = streams[container]
    cut = tmp_path / f"cut{clean.suffix}"
    corrupt.truncate(clean, cut, fraction)
    out = tmp_path / "out.mkv"
    report = pipeline.enhance(cut, out, media.EncoderSettings(codec="ffv1"), plugins=["none"])
    assert 0 < report.frames < 33 and len(decode_all(out)) == report.frames
    if container == "x265.mkv":  # Matroska records the track's duration: the cut is found and estimated
        assert report.decode["truncated"] and report.decode["lost"] >= 1
        assert report.frames + report.decode["lost"] <= 34  # an estimate from the track's duration
