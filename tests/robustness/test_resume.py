"""Crash safety and --resume: a job killed with SIGKILL leaves the destination untouched, and the next run
with --resume continues from the last finished chunk and produces the frames an uninterrupted run does.

The kill is deterministic: the probe plugin SIGKILLs its own process when asked to restore frame K
(GENPOST_PROBE_KILL_AT), by which time the chunks before K are finished (chunks of 8 frames, keyint 8)."""

from __future__ import annotations

import json
import signal

import numpy as np
from conftest import decode_all

from genpost import media
from genpost.jobs import pipeline

from .conftest import cli, one_line_error, probe_installed

CHUNK = ("--resume", "--chunk-frames", "8")


def same_frames(a, b) -> bool:
    fa, fb = decode_all(a), decode_all(b)
    return len(fa) == len(fb) and all(
        x.pts * x.time_base == y.pts * y.time_base and all(np.array_equal(p, q) for p, q in zip(x.planes, y.planes))
        for x, y in zip(fa, fb)
    )


def work(out):
    from genpost.jobs.resume import work_dir

    return work_dir(out)


def killed_run(src, out, *args):
    result = cli("enhance", src, "-o", out, *args, "-q", env={"GENPOST_PROBE_KILL_AT": "20"}, probe=True)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert not out.exists()  # the destination is untouched
    progress = json.loads((work(out) / "progress.json").read_text())
    assert [c["first"] for c in progress["chunks"]] == [0, 8]  # frames 0..15 were finished
    return progress


def test_kill_then_resume_gives_the_frames_of_an_uninterrupted_run(probe_mkv, tmp_path):
    plain = tmp_path / "plain.mkv"
    assert cli("enhance", probe_mkv, "-o", plain, "--codec", "ffv1", "-q", probe=True).returncode == 0
    out = tmp_path / "out.mkv"
    killed_run(probe_mkv, out, "--codec", "ffv1", *CHUNK)
    # resume; restoring any frame before 16 again would kill it (frame 5): it does not
    result = cli("enhance", probe_mkv, "-o", out, "--codec", "ffv1", *CHUNK, "--json", "-q",
                 env={"GENPOST_PROBE_KILL_AT": "5"}, probe=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["resumed_from"] == 16 and report["frames"] == 33
    assert report["per_plugin"]["probe"]["frames"] == 33 and report["per_plugin"]["probe"]["with_side_info"] == 33
    assert same_frames(out, plain)  # ffv1 is lossless: chunked or not, the restored frames are identical
    assert not work(out).exists()


def test_x265_resume_with_audio_and_subtitles(av_source, tmp_path):
    src = tmp_path / "src.mkv"
    with probe_installed():
        pipeline.encode(av_source, src, media.EncoderSettings(qp=37, preset="ultrafast", keyint=8), plugins=["probe"])
    # constant QP: x265's CRF rate control with frame threads depends on timing, so two CRF runs can differ
    args = ("--codec", "libx265", "--qp", "30", "--preset", "ultrafast", *CHUNK)
    whole = tmp_path / "whole.mkv"
    assert cli("enhance", src, "-o", whole, *args, "-q", probe=True).returncode == 0
    out = tmp_path / "out.mkv"
    killed_run(src, out, *args)
    assert cli("enhance", src, "-o", out, *args, "-q", probe=True).returncode == 0
    assert same_frames(out, whole)
    from test_media import other_packets

    assert other_packets(out) == other_packets(src) == other_packets(whole)


def test_a_damaged_chunk_is_redone(probe_mkv, tmp_path):
    out = tmp_path / "out.mkv"
    killed_run(probe_mkv, out, "--codec", "ffv1", *CHUNK)
    chunk = work(out) / "chunk-00001.nut"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    result = cli("enhance", probe_mkv, "-o", out, "--codec", "ffv1", *CHUNK, "--json", "-q", probe=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["resumed_from"] == 8
    plain = tmp_path / "plain.mkv"
    assert cli("enhance", probe_mkv, "-o", plain, "--codec", "ffv1", "-q", probe=True).returncode == 0
    assert same_frames(out, plain)


def test_another_job_does_not_reuse_the_work(probe_mkv, tmp_path):
    out = tmp_path / "out.mkv"
    killed_run(probe_mkv, out, "--codec", "ffv1", *CHUNK)
    changed = cli("enhance", probe_mkv, "-o", out, "--codec", "ffv1", "--resume", "--chunk-frames", "4", "-q", probe=True)
    one_line_error(changed, 6, "another job")
    assert not out.exists() and (work(out) / "progress.json").exists()
    plain = cli("enhance", probe_mkv, "-o", out, "--codec", "ffv1", "-q", probe=True)
    assert plain.returncode == 0 and "add --resume to continue it" in plain.stderr


def test_sigterm_cleans_up_like_ctrl_c(probe_mkv, tmp_path):
    """kill (SIGTERM), timeout and docker stop get exit 130 and no partial output, as Ctrl-C does."""
    import os
    import subprocess
    import sys

    from .conftest import PLUGINS

    code = (
        "import os, signal, sys, genpost_probe\n"
        "restore = genpost_probe.Probe.restore\n"
        "def terminated_at_10(self, f, p, c):\n"
        "    if f.index == 10: os.kill(os.getpid(), signal.SIGTERM)\n"
        "    return restore(self, f, p, c)\n"
        "genpost_probe.Probe.restore = terminated_at_10\n"
        "from genpost.cli import main; sys.argv = ['genpost'] + sys.argv[1:]; main()\n"
    )
    out = tmp_path / "out.mkv"
    env = {**os.environ, "PYTHONPATH": str(PLUGINS)}
    cmd = [sys.executable, "-c", code, "enhance", str(probe_mkv), "-o", str(out), "--codec", "ffv1", "-q"]
    one_line_error(subprocess.run(cmd, capture_output=True, text=True, env=env), 130, "interrupted")
    assert list(tmp_path.iterdir()) == []


def test_encode_killed_in_analyze_resumes_to_the_same_stream(av_source, tmp_path):
    """encode --resume: base chunks and their records survive a SIGKILL; the resumed output carries the same
    video packets (SEI included) as an uninterrupted run, and the source's audio and subtitles."""
    import av
    from test_media import other_packets

    args = ("--plugin", "probe", "--qp", "37", "--preset", "ultrafast", "--keyint", "8", *CHUNK, "-q")
    whole = tmp_path / "whole.mkv"
    assert cli("encode", av_source, "-o", whole, *args, probe=True).returncode == 0
    out = tmp_path / "out.mkv"
    killed = cli("encode", av_source, "-o", out, *args, env={"GENPOST_PROBE_ANALYZE_KILL_AT": "20"}, probe=True)
    assert killed.returncode == -signal.SIGKILL and not out.exists()
    chunks = json.loads((work(out) / "progress.json").read_text())["chunks"]
    assert chunks and chunks[0]["first"] == 0 and sum(c["frames"] for c in chunks) <= 20  # ffv1 source: key every 12
    resumed = cli("encode", av_source, "-o", out, *args[:-1], "--json", env={"GENPOST_PROBE_ANALYZE_KILL_AT": "5"}, probe=True)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["frames"] == 33 and report["frames_with_side_info"] == {"probe/1": 33}

    def video(path):
        with av.open(str(path)) as c:
            return [(bytes(p), p.pts) for p in c.demux(video=0) if p.size]

    assert video(out) == video(whole)
    assert other_packets(out) == other_packets(av_source)
    assert not work(out).exists()


def _one_frame_segments(av_source, folder, n):
    """``n`` one-frame x265 chunk files (MPEG-TS, as --resume and --workers write them), like the last
    chunk of a 33-frame input cut every 8 frames: its one frame at 1068 ms."""
    from dataclasses import replace
    from fractions import Fraction

    from genpost.jobs import resume

    with media.InputFile(av_source) as inp:
        info = replace(inp.info, time_base=Fraction(1, 1000))
        frame = next(iter(inp.frames())).replace(pts=1068, time_base=Fraction(1, 1000))
    muxer, ext = resume.segment_format("libx265")
    settings = media.EncoderSettings(codec="libx265", crf=18.0, preset="ultrafast")
    paths = []
    for i in range(n):
        segment = resume.Segment(folder / f"chunk-{i}.{ext}", 32, info, settings, muxer)
        segment.encode(frame)
        segment.out.close()
        paths.append(segment.part)
    return paths


def test_a_one_frame_x265_chunk_keeps_its_pts_and_a_dts_at_or_before_it(av_source, tmp_path):
    """x265 never measures its B-frame delay on fewer frames than that delay, so the dts of a one-frame
    chunk's packet was uninitialised memory (most runs): stored in the chunk's 33-bit TS timestamps it
    came back as a dts past the pts (the muxer then refused the join) or a pts 2**33 ticks off."""
    import av

    for path in _one_frame_segments(av_source, tmp_path, 8):
        with av.open(str(path)) as c:
            timing = [(p.pts, p.dts) for p in c.demux(c.streams.video[0]) if p.size]
        assert len(timing) == 1 and timing[0][0] == 1068 * 90 and timing[0][1] <= timing[0][0], (path.name, timing)


def test_a_chunk_file_whose_dts_is_past_its_pts_fails_with_one_line_not_a_mux_error(av_source, tmp_path):
    """The situation of the failing join, made by hand: a chunk whose packet reads back with dts 3 ms past
    its pts (an encoder's dts 2**33 ticks early wraps to that in MPEG-TS). The job's own error, named."""
    import av
    import pytest

    from genpost.errors import PipelineError
    from genpost.jobs import resume

    good, bad = _one_frame_segments(av_source, tmp_path, 2)
    with av.open(str(good)) as src:
        packets = [(bytes(p), p.pts, p.is_keyframe) for p in src.demux(src.streams.video[0]) if p.size]
        with av.open(str(bad), "w", format="mpegts", options={"avoid_negative_ts": "disabled"}) as out:
            stream = out.add_stream_from_template(src.streams.video[0])
            for data, pts, key in packets:
                packet = av.Packet(data)
                packet.pts, packet.dts, packet.time_base = pts, pts + 270 - (1 << 33), stream.time_base
                packet.is_keyframe, packet.stream = key, stream
                out.mux(packet)
    with av.open(str(bad)) as c:
        assert [(p.pts, p.dts) for p in c.demux(c.streams.video[0]) if p.size] == [(96120, 96390)]
    with media.InputFile(av_source) as inp:
        info = inp.info
    with pytest.raises(PipelineError, match=f"cannot join chunk {bad.name}: no room for its decode timestamps"):
        resume.assemble(av_source, None, [bad], tmp_path / "out.mkv", info, {})
