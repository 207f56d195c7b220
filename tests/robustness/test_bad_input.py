"""Bad input through the real CLI: one 'genpost: error:' line naming the problem, the documented exit code,
no traceback, nothing new at the destination's folder, the input byte-for-byte unchanged.

Every damaged file is made from a real stream (carphone through x265, a VTM .266, the carphone y4m)."""

from __future__ import annotations

import shutil

import pytest
from conftest import CARPHONE, ffmpeg

from . import corrupt
from .conftest import VTM_RA, cli, one_line_error, snapshot

FPS = ("--fps", "30000/1001")


def _y4m_header(fields: bytes) -> bytes:
    return b"YUV4MPEG2 " + fields


@pytest.fixture(scope="session")
def bad(tmp_path_factory, streams) -> dict:
    """name -> damaged or unsupported file, each built from a real stream."""
    d = tmp_path_factory.mktemp("bad")
    mkv, mp4 = streams["x265.mkv"], streams["x265.mp4"]
    files = {}

    def put(name):
        files[name] = d / name
        return files[name]

    put("empty.mkv").write_bytes(b"")
    for ext in ("mkv", "mp4", "ts", "265", "266", "y4m"):
        corrupt.garbage(put(f"garbage.{ext}"), 5000, seed=len(ext))
    corrupt.truncate(mkv, put("header_only.mkv"), 0.05)
    corrupt.truncate(mkv, put("half.mkv"), 0.5)
    corrupt.truncate(mp4, put("half.mp4"), 0.5)
    corrupt.flip_bytes(mkv, put("container_hit.mkv"), 40, seed=1)
    corrupt.flip_bytes(VTM_RA, put("vtm_hit.266"), 30, seed=3)
    # coded-picture damage the decoder notices (the seed is searched, not assumed)
    files["picture_hit.mkv"] = _damaged_copy(mkv, d / "picture_hit.mkv")
    corrupt.y4m_short_tail(CARPHONE, put("short_tail.y4m"), 19000)
    corrupt.y4m(put("huge.y4m"), _y4m_header(b"W100000 H100000 F30000:1001 Ip A1:1 C420jpeg"))
    corrupt.y4m(put("over_8k.y4m"), _y4m_header(b"W8192 H8192 F25:1 Ip A1:1 C420jpeg"))
    corrupt.y4m(put("zero.y4m"), _y4m_header(b"W0 H0 F25:1 C420jpeg"))
    corrupt.y4m(put("negative.y4m"), _y4m_header(b"W-176 H144 F25:1 C420jpeg"))
    corrupt.y4m(put("no_size.y4m"), _y4m_header(b"F25:1 C420jpeg"))
    put("unterminated.y4m").write_bytes(b"YUV4MPEG2 W176 H144 " + b"X" * 2000)
    put("not_y4m.y4m").write_bytes(mkv.read_bytes())
    put("unknown_codec.mkv").write_bytes(mkv.read_bytes().replace(b"V_MPEGH/ISO/HEVC", b"V_MPEGH/ISO/QQQQ"))
    ffmpeg("-i", str(CARPHONE), "-frames:v", "4", "-pix_fmt", "gray", str(put("gray.y4m")))
    ffmpeg("-i", str(CARPHONE), "-frames:v", "4", "-pix_fmt", "yuv444p", str(put("yuv444.y4m")))
    ffmpeg("-i", str(CARPHONE), "-frames:v", "4", "-c:v", "ffv1", "-pix_fmt", "yuv422p10le", str(put("yuv422p10.mkv")))
    ffmpeg("-i", str(CARPHONE), "-c:v", "mpeg4", "-q:v", "5", str(put("mpeg4.mkv")))
    return files


def _damaged_copy(src, dst):
    from genpost import media

    for seed in range(1, 50):
        corrupt.flip_in_packets(src, dst, flips=4, seed=seed)
        with media.InputFile(dst) as inp:
            inp.max_errors = None
            frames = sum(1 for _ in inp.frames())
            if inp.damage.concealed and frames == 33:
                return dst
    raise AssertionError("no seed made damage the decoder reports")


# (case id, command, file, extra args, environment, exit code, words the error line must contain)
CASES = [
    ("missing", "enhance", "nope.mkv", (), {}, 3, ["no such file"]),
    ("missing-encode", "encode", "nope.y4m", (), {}, 3, ["no such file"]),
    ("empty", "enhance", "empty.mkv", (), {}, 3, ["empty"]),
    ("empty-inspect", "inspect", "empty.mkv", (), {}, 3, ["empty"]),
    *[(f"garbage-{e}", "enhance", f"garbage.{e}", FPS if e in ("265", "266") else (), {}, 3, []) for e in
      ("mkv", "mp4", "ts", "265", "266", "y4m")],  # fmt: skip
    ("garbage-encode", "encode", "garbage.mkv", (), {}, 3, []),
    ("header-only", "enhance", "header_only.mkv", (), {}, 3, []),
    ("truncated-mkv-strict", "enhance", "half.mkv", ("--max-errors", "0"), {}, 3, ["ends", "max-errors"]),
    ("truncated-mkv-encode", "encode", "half.mkv", (), {}, 3, ["ends"]),
    ("truncated-mp4", "enhance", "half.mp4", (), {}, 3, []),
    ("container-hit-strict", "enhance", "container_hit.mkv", ("--max-errors", "0"), {}, 3, ["max-errors"]),
    ("picture-hit-strict", "enhance", "picture_hit.mkv", ("--max-errors", "0"), {}, 3, ["damaged frames"]),
    ("picture-hit-encode", "encode", "picture_hit.mkv", (), {}, 3, ["damaged frames"]),
    ("vtm-hit-strict", "enhance", "vtm_hit.266", (*FPS, "--codec", "ffv1", "--max-errors", "0"), {}, 3, ["damaged"]),
    ("vvc-copy-to-mkv", "enhance", "vtm.266", FPS, {}, 3, ["cannot copy vvc"]),
    ("short-tail-encode", "encode", "short_tail.y4m", (), {}, 3, ["cut short"]),
    ("short-tail-strict", "enhance", "short_tail.y4m", ("--codec", "ffv1", "--max-errors", "0"), {}, 3, ["cut short"]),
    ("huge-y4m", "enhance", "huge.y4m", (), {}, 3, ["100000x100000", "limit"]),
    ("over-8k-y4m", "encode", "over_8k.y4m", (), {}, 3, ["8192x8192", "GENPOST_MAX_PIXELS"]),
    ("zero-y4m", "enhance", "zero.y4m", (), {}, 3, ["0x0"]),
    ("negative-y4m", "enhance", "negative.y4m", (), {}, 3, ["-176x144"]),
    ("no-size-y4m", "enhance", "no_size.y4m", (), {}, 3, ["W and H"]),
    ("unterminated-y4m", "enhance", "unterminated.y4m", (), {}, 3, ["not terminated"]),
    ("not-y4m", "encode", "not_y4m.y4m", (), {}, 3, ["not a y4m"]),
    ("pixel-cap", "encode", "carphone.y4m", (), {"GENPOST_MAX_PIXELS": "20000"}, 3, ["176x144", "20000"]),
    ("pixel-cap-invalid", "enhance", "carphone.y4m", (), {"GENPOST_MAX_PIXELS": "lots"}, 2, ["GENPOST_MAX_PIXELS"]),
    ("unknown-codec", "enhance", "unknown_codec.mkv", (), {}, 3, ["codec"]),
    ("gray", "encode", "gray.y4m", (), {}, 3, ["pixel format gray"]),
    ("yuv444", "enhance", "yuv444.y4m", (), {}, 3, ["pixel format yuv444p"]),
    ("yuv422p10", "enhance", "yuv422p10.mkv", (), {}, 3, ["pixel format yuv422p10"]),
    ("unknown-plugin", "enhance", "carphone.y4m", ("--plugin", "nosuch"), {}, 5, ["nosuch"]),
    ("unknown-plugin-encode", "encode", "carphone.y4m", ("--plugin", "nosuch"), {}, 5, ["nosuch"]),
    ("plugin-not-allowed", "encode", "carphone.y4m", ("--plugin", "probe"),
     {"GENPOST_LOAD_PLUGINS": "builtins"}, 5, ["probe"]),  # fmt: skip
    ("plugin-setup-fails", "encode", "carphone.y4m", ("--plugin", "probe"),
     {"GENPOST_PROBE_SETUP_RAISE": "1"}, 5, ["probe", "set up", "OSError"]),  # fmt: skip
]


@pytest.mark.parametrize("case,command,name,extra,env,code,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_leaves_nothing(bad, tmp_path, case, command, name, extra, env, code, words):
    src = tmp_path / name
    if name == "carphone.y4m":
        shutil.copy(CARPHONE, src)
    elif name == "vtm.266":
        shutil.copy(VTM_RA, src)
    elif name in bad:
        shutil.copy(bad[name], src)
    before = snapshot(tmp_path)
    out = tmp_path / ("out.mkv" if command != "inspect" else "")
    args = [command, src] + (["-o", out] if command != "inspect" else [])
    result = cli(*args, *extra, "-q" if command != "inspect" else "--json", env=env, probe=True)
    one_line_error(result, code, *words)
    assert snapshot(tmp_path) == before  # no output, no temporary left, input untouched


@pytest.mark.parametrize(
    "output,code,words",
    [("same", 4, ["is the input"]), ("nodir/out.mkv", 4, ["does not exist"]), ("dir.mkv", 4, ["directory"]),
     ("out.avi", 2, ["extension"])],  # fmt: skip
)
def test_unusable_output_paths(tmp_path, streams, output, code, words):
    (tmp_path / "dir.mkv").mkdir()
    for command, name, source in (("enhance", "in.y4m", CARPHONE), ("encode", "in.mkv", streams["x265.mkv"])):
        src = tmp_path / name
        shutil.copy(source, src)
        before = snapshot(tmp_path)
        dest = src if output == "same" else tmp_path / output
        one_line_error(cli(command, src, "-o", dest, "--plugin", "wiener", "-q"), code, *words)
        assert snapshot(tmp_path) == before


def test_damaged_pictures_are_concealed_and_counted_by_default(bad, tmp_path):
    """enhance is tolerant: every frame comes out, with the input's timestamps, and the damage is reported."""
    import json

    from conftest import decode_all

    src = tmp_path / "in.mkv"
    shutil.copy(bad["picture_hit.mkv"], src)
    out = tmp_path / "out.mkv"
    result = cli("enhance", src, "-o", out, "--codec", "ffv1", "--plugin", "none", "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert "genpost: warning: damaged input" in result.stderr
    report = json.loads(result.stdout)
    assert report["frames"] == 33 and report["decode"]["concealed"] >= 1
    assert [f.pts for f in decode_all(out)] == [f.pts for f in decode_all(bad["mpeg4.mkv"])]  # same 33 timestamps


def test_a_foreign_codec_that_decodes_is_restored(bad, tmp_path):
    """MPEG-4 Part 2 is not what genpost codes, but it decodes to 4:2:0: enhance takes it, frame for frame."""
    from conftest import decode_all

    out = tmp_path / "out.mkv"
    result = cli("enhance", bad["mpeg4.mkv"], "-o", out, "--codec", "ffv1", "--plugin", "wiener", "-q")
    assert result.returncode == 0, result.stderr
    assert len(decode_all(out)) == 33
