"""A long job does not drift: 3000 frames (100.1 s) of 64x64 video at 30000/1001 with 48 kHz AAC audio go
through enhance (decode, encode) in one pass and in resumable chunks; every video timestamp is the
input's exactly, and the audio packets are the input's bytes at the input's times."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from conftest import ffmpeg

from genpost import media
from genpost.jobs import pipeline

FRAMES = 3000


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=30000/1001", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
        "-frames:v", str(FRAMES), "-t", str(FRAMES * 1001 / 30000), "-c:v", "libx264", "-preset", "ultrafast", "-g", "48",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", str(path),
    )  # fmt: skip
    return path


def video_times(path) -> list[Fraction]:
    with media.InputFile(path) as inp:
        return [f.pts * f.time_base for f in inp.frames()]


def audio(path) -> list[tuple[bytes, Fraction]]:
    with av.open(str(path)) as c:
        return [(bytes(p), p.pts * p.time_base) for p in c.demux(audio=0) if p.size]


@pytest.mark.parametrize("resume", [False, True], ids=["one-pass", "resumable-chunks"])
def test_no_drift_over_3000_frames(long_clip, tmp_path, resume):
    expected = video_times(long_clip)
    assert len(expected) == FRAMES and expected[-1] == Fraction(FRAMES - 1) * Fraction(1001, 30000)
    out = tmp_path / "out.mp4"
    settings = media.EncoderSettings(codec="libx264", preset="ultrafast")
    report = pipeline.enhance(long_clip, out, settings, plugins=["none"], schedule=pipeline.Schedule(resume=resume,
                                                                                                     chunk_frames=500))
    assert report.frames == FRAMES and report.decode["frames"] == 0
    assert video_times(out) == expected  # every timestamp exact, the last one included
    assert audio(out) == audio(long_clip)  # bit-exact audio, same times
