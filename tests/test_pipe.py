"""genpost pipe: y4m in, y4m out, frame by frame, between two real ffmpeg 9 processes (imageio-ffmpeg)."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import decode_all

from genpost import media
from genpost.jobs import pipe, pipeline
from genpost.media.y4m import PROVENANCE_FIELD, Y4MHeader, Y4MReader

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
GENPOST = [sys.executable, "-m", "genpost.cli"]
LOW_LAMBDA = {"wiener.lambda_scale": "0.05"}  # makes wiener send side info on this small clip


@pytest.fixture(scope="module", params=[8, 10], ids=["8bit", "10bit"])
def sidecar_base(request, tmp_path_factory, carphone):
    """carphone coded at QP 37 (8- or 10-bit) with wiener side info in a .gpsi sidecar."""
    depth = request.param
    out = tmp_path_factory.mktemp(f"pipe{depth}") / "base.mkv"
    settings = media.EncoderSettings(qp=37, preset="fast", bit_depth=depth)
    report = pipeline.encode(carphone, out, settings, plugins=["wiener"], carriage="sidecar", options=LOW_LAMBDA)
    assert report.side_info_bytes.get("wiener/1", 0) > 0
    return out, out.with_name("base.mkv.gpsi"), depth


def _shell(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120, check=False)


def _q(path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def test_recipe_between_two_ffmpeg_commands_matches_enhance(sidecar_base, tmp_path):
    """The documented recipe, run as a real shell pipeline, gives exactly the frames enhance gives."""
    base, sidecar, depth = sidecar_base
    out = tmp_path / "piped.mkv"
    genpost = " ".join(_q(a) for a in GENPOST)
    cmd = (
        f"{_q(FFMPEG)} -v error -i {_q(base)} -strict -1 -f yuv4mpegpipe - "
        f"| {genpost} pipe --plugin wiener --sideinfo {_q(sidecar)} "
        f"| {_q(FFMPEG)} -v error -y -f yuv4mpegpipe -i - -c:v ffv1 {_q(out)}"
    )
    result = _shell(cmd)
    assert result.returncode == 0, result.stderr
    assert f"{33} frames" in result.stderr and "plugins: wiener" in result.stderr

    piped = decode_all(out)
    restored = tmp_path / "enhanced.y4m"
    pipeline.enhance(base, restored, media.EncoderSettings(codec="y4m"), plugins=["wiener"], sidecar=sidecar)
    expected = decode_all(restored)
    plain = decode_all(base)
    assert len(piped) == len(expected) == len(plain) == 33
    assert piped[0].bit_depth == depth
    for got, want in zip(piped, expected):
        for a, b in zip(got.planes, want.planes):
            np.testing.assert_array_equal(a, b)
    changed = sum(any(not np.array_equal(a, b) for a, b in zip(p.planes, q.planes)) for p, q in zip(piped, plain))
    assert changed > 0  # the side info really reached the plugin


def test_header_fields_pass_through_with_provenance(carphone):
    raw = carphone.read_bytes()
    header_end = raw.index(b"\n") + 1
    custom = b"YUV4MPEG2 W176 H144 F25:1 It A16:11 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=FULL XFOO=bar\n"
    stream = custom + raw[header_end:]
    out = io.BytesIO()
    report = pipe.run(io.BytesIO(stream), out, plugins=["wiener"])
    assert report.frames == 33 and not report.downstream_closed
    out_header = Y4MHeader.parse(out.getvalue()[: out.getvalue().index(b"\n") + 1])
    in_header = Y4MHeader.parse(custom)
    assert out_header.tokens[: len(in_header.tokens)] == in_header.tokens
    assert out_header.extension(PROVENANCE_FIELD) == "wiener/2.4"
    assert out_header.rate == 25 and out_header.color_range == 2
    # no side info: wiener leaves frames untouched, so the payload bytes are identical
    assert out.getvalue()[len(out_header.to_bytes()) :] == raw[header_end:]


def test_provenance_accumulates_over_chained_stages(carphone):
    first, second = io.BytesIO(), io.BytesIO()
    pipe.run(io.BytesIO(carphone.read_bytes()), first, plugins=["wiener"])
    pipe.run(io.BytesIO(first.getvalue()), second, plugins=["wiener"])
    header = Y4MReader(io.BytesIO(second.getvalue())).header
    assert header.extension(PROVENANCE_FIELD) == "wiener/2.4,wiener/2.4"


class _Watched(io.RawIOBase):
    """An input that checks, at every read, that all but the frame being read were already written out."""

    def __init__(self, data: bytes, header_len: int, out_header_len: int, frame_len: int, out: io.BytesIO):
        self.data, self.pos, self.header_len, self.frame_len, self.out = data, 0, header_len, frame_len, out
        self.out_header_len = out_header_len
        self.worst_lag = 0

    def readable(self):
        return True

    def readinto(self, buf):
        frames_consumed = max(0, (self.pos - self.header_len) // self.frame_len)
        written = max(0, (self.out.tell() - self.out_header_len) // self.frame_len)
        self.worst_lag = max(self.worst_lag, frames_consumed - written)
        n = min(len(buf), len(self.data) - self.pos)
        buf[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def test_streams_one_frame_at_a_time(carphone):
    """Frame k is written before frame k+2 is read: nothing accumulates, so memory stays flat."""
    raw = carphone.read_bytes()
    header_len = raw.index(b"\n") + 1
    frame_len = len(b"FRAME\n") + 176 * 144 * 3 // 2
    out_header = Y4MHeader.parse(raw[:header_len]).with_extension(PROVENANCE_FIELD, "wiener/2.4").to_bytes()
    out = io.BytesIO()
    watched = _Watched(raw, header_len, len(out_header), frame_len, out)
    report = pipe.run(io.BufferedReader(watched, buffer_size=8192), out, plugins=["wiener"])
    assert report.frames == 33
    assert watched.worst_lag <= 1


def test_downstream_closing_early_ends_quietly(sidecar_base, tmp_path):
    base, sidecar, _ = sidecar_base
    up = subprocess.Popen([FFMPEG, "-v", "error", "-i", str(base), "-strict", "-1", "-f", "yuv4mpegpipe", "-"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    mid = subprocess.Popen([*GENPOST, "pipe", "--plugin", "wiener", "--sideinfo", str(sidecar)],
                           stdin=up.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    up.stdout.close()
    head = mid.stdout.read(200_000)  # a few frames, then stop reading: like ffmpeg -frames:v N
    mid.stdout.close()
    _, err = mid.communicate(timeout=60)
    up.wait(timeout=60)
    assert head.startswith(b"YUV4MPEG2 ")
    assert mid.returncode == 0, err
    assert b"stdout closed by its reader" in err and b"Traceback" not in err


def test_report_json(carphone, tmp_path):
    report = tmp_path / "r.json"
    result = subprocess.run([*GENPOST, "pipe", "--plugin", "wiener", "--report", str(report), "-q"],
                            input=carphone.read_bytes(), capture_output=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["frames"] == 33 and data["per_plugin"]["wiener"]["frames"] == 33
    assert data["provenance"] == "wiener/2.4"
    assert result.stdout.startswith(b"YUV4MPEG2 ") and result.stderr == b""


def _one_line(result, code):
    err = result.stderr.decode()
    assert result.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("genpost: error:"), err


@pytest.mark.parametrize(
    "data, code, words",
    [
        (b"not a y4m stream\n", 3, "not a y4m stream"),
        (b"", 3, "empty input"),
        (b"YUV4MPEG2 W16 H16 F25:1 C422\nFRAME\n" + bytes(512), 3, "C422"),
        (b"YUV4MPEG2 W16 H16 F25:1 C420jpeg\nFRAME\n" + bytes(100), 3, "truncated"),
        (b"YUV4MPEG2 W16 H16 F25:1 C420jpeg\nFRAME\n" + bytes(384) + b"GARBAGE\n", 3, "expected 'FRAME'"),
        (b"YUV4MPEG2 Wx H16\n", 3, "bad y4m header"),
    ],
)
def test_bad_input_is_one_line_exit_3(data, code, words):
    result = subprocess.run([*GENPOST, "pipe", "--plugin", "wiener"], input=data, capture_output=True, check=False)
    _one_line(result, code)
    assert words in result.stderr.decode()


def test_unknown_plugin_is_exit_5(carphone):
    result = subprocess.run([*GENPOST, "pipe", "--plugin", "nosuch"], input=b"", capture_output=True, check=False)
    _one_line(result, 5)


def test_missing_sidecar_is_exit_3(tmp_path):
    result = subprocess.run([*GENPOST, "pipe", "--sideinfo", str(tmp_path / "none.gpsi")], input=b"", capture_output=True, check=False)
    _one_line(result, 3)  # unreadable input, as docs/cli.md says


def test_a_long_header_still_opens_in_ffmpeg(tmp_path):
    """FFmpeg's y4m demuxer refuses a header line over 128 bytes: optional X fields give way."""
    from genpost.media.y4m import FFMPEG_MAX_HEADER, Y4MHeader

    header = Y4MHeader.parse(b"YUV4MPEG2 W16 H16 F25:1 Ip A1:1 C420mpeg2 XYSCSS=420MPEG2 XCOLORRANGE=LIMITED\n", "t")
    long = header.with_extension("GENPOST_POSTPROCESSORS", ",".join(f"plugin-{i}/1.0.0" for i in range(6)))
    line = long.to_bytes()
    assert len(line) <= FFMPEG_MAX_HEADER and b"XCOLORRANGE=LIMITED" in line and b"A1:1" in line
    path = tmp_path / "long.y4m"
    path.write_bytes(line + b"FRAME\n" + bytes(16 * 16 * 3 // 2))
    import av

    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 1
    short = header.with_extension("GENPOST_POSTPROCESSORS", "wiener/2.4").to_bytes()
    assert b"XGENPOST_POSTPROCESSORS=wiener/2.4" in short and b"XYSCSS" in short
