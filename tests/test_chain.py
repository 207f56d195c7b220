"""Chain presets and the ffmpeg route of enhance: VVC through libvvenc, FFmpeg filters by name, provenance."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from conftest import decode_all, ffmpeg

from genpost import media
from genpost.eval import metrics
from genpost.jobs import chain, pipeline

pytest.importorskip("imageio_ffmpeg")
pytest.importorskip("ffmpeg")  # ffmpeg-python
GENPOST = [sys.executable, "-m", "genpost.cli"]
LOW_LAMBDA = {"wiener.lambda_scale": "0.05"}
ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return subprocess.run([*GENPOST, *map(str, args)], capture_output=True, text=True, timeout=300, check=False)


def one_line_error(result, code):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("genpost: error:"), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def base_with_audio(tmp_path_factory, av_source):
    """The carphone MKV with AAC audio and SRT subtitles, coded by genpost encode with wiener side info."""
    out = tmp_path_factory.mktemp("chain") / "base.mkv"
    report = pipeline.encode(av_source, out, media.EncoderSettings(qp=37, preset="fast"), plugins=["wiener"], carriage="sei",
                             options=LOW_LAMBDA)  # fmt: skip
    assert report.side_info_bytes.get("wiener/1", 0) > 0
    return out


@pytest.fixture(scope="module")
def restored_y4m(tmp_path_factory, base_with_audio):
    out = tmp_path_factory.mktemp("chainref") / "restored.mkv"  # lossless, by the PyAV route
    pipeline.enhance(base_with_audio, out, media.EncoderSettings(codec="ffv1"), plugins=["wiener"])
    return decode_all(out)


# ---------------------------------------------------------------- presets


@pytest.mark.parametrize("name", chain.shipped())
def test_shipped_presets_load(name):
    steps = chain.load(name)
    assert steps.description and steps.output.codec in chain.CODECS
    assert steps.plugins is None  # they restore with whatever the side info names
    for vf in steps.pre + steps.post:
        chain.ffmpeg_tools.check_filter(vf, name)  # the real ffmpeg accepts every filter string


def test_at_least_the_documented_presets_ship():
    assert {"broadcast-hd", "vvc-archive", "web-720p", "deinterlace-first"} <= set(chain.shipped())


def _load_text(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return chain.load(path)


@pytest.mark.parametrize(
    "text, words",
    [
        ('descripton = "x"\n[[step]]\nplugin = "auto"\n', "unknown key 'descripton'"),
        ('[[step]]\nplugin = "auto"\noptionz = {}\n', "step 1: unknown key 'optionz'"),
        ('[[step]]\nfilter = "scale"\nwidht = 3\n[[step]]\nplugin = "auto"\n', "step 1: unknown key 'widht'"),
        ('[[step]]\nfilter = "blur"\n[[step]]\nplugin = "auto"\n', "unknown filter 'blur'"),
        ('[[step]]\nfilter = "scale"\nwidth = "1280"\n[[step]]\nplugin = "auto"\n', "width must be int"),
        ('[[step]]\nfilter = "deinterlace"\nmode = "weave"\n[[step]]\nplugin = "auto"\n', "mode must be one of"),
        ('[[step]]\nplugin = "auto"\n[output]\ncodec = "mpeg2"\n', "unknown codec 'mpeg2'"),
        ('[[step]]\nplugin = "auto"\n[output]\nbitrate = 5\n', "[output]: unknown key 'bitrate'"),
        ('[[step]]\nplugin = "auto"\n[output]\ncodec = "vvc"\nbit_depth = 8\n', "10-bit only"),
        ('[[step]]\nplugin = "auto"\n[output]\ncodec = "vvc"\ncrf = 20\n', "no CRF"),
        ('[[step]]\nplugin = "auto"\n[output]\nqp = 30\ncrf = 20\n', "qp or crf, not both"),
        ('[[step]]\nfilter = "scale"\n', "no plugin step"),
        ('[[step]]\nplugin = "wiener"\n[[step]]\nffmpeg = "hflip"\n[[step]]\nplugin = "wiener"\n', "between post-processors"),
        ('[[step]]\nplugin = "auto"\nffmpeg = "hflip"\n', "exactly one of"),
        ('[[step]]\nplugin = "auto"\n[[step]]\nplugin = "wiener"\n', "cannot be combined"),
        ('[[step]\nplugin = "auto"\n', "not valid TOML"),
    ],
)
def test_bad_presets_fail_with_one_clear_line(tmp_path, text, words):
    with pytest.raises(chain.ChainError) as info:
        _load_text(tmp_path, text)
    message = str(info.value)
    assert words in message and "\n" not in message and info.value.exit_code == 2


def test_unknown_key_through_the_cli_is_exit_2(tmp_path, base_with_audio):
    preset = tmp_path / "bad.toml"
    preset.write_text('[[step]]\nplugin = "auto"\n[output]\ncodex = "vvc"\n')
    line = one_line_error(run("enhance", base_with_audio, "-o", tmp_path / "o.mkv", "--chain", preset), 2)
    assert "unknown key 'codex'" in line and not (tmp_path / "o.mkv").exists()


def test_missing_preset_lists_the_shipped_ones(tmp_path, base_with_audio):
    line = one_line_error(run("enhance", base_with_audio, "-o", tmp_path / "o.mkv", "--chain", "nosuch"), 2)
    assert "broadcast-hd" in line


def test_cli_flags_override_the_preset():
    preset = chain.load("vvc-archive")
    profile = chain.resolve_profile(preset, chain.OutputProfile(qp=30, preset="faster"), 8)
    assert (profile.codec, profile.qp, profile.preset, profile.bit_depth) == ("vvc", 30, "faster", 10)
    web = chain.resolve_profile(chain.load("web-720p"), chain.OutputProfile(qp=25), 10)
    assert (web.qp, web.crf, web.bit_depth) == (25, None, 8)
    with pytest.raises(chain.ChainError):
        chain.resolve_profile(preset, chain.OutputProfile(bit_depth=8), 8)


def test_vf_names():
    assert chain.expand_vf("deinterlace,scale=88:72") == [chain._deinterlace({}), "scale=88:72"]
    assert chain.expand_vf("scale='min(iw,640)':-2") == ["scale='min(iw,640)':-2"]
    assert chain.expand_vf(None) == []


# ---------------------------------------------------------------- running through ffmpeg


def _psnr_y(refs, tests):
    return metrics.sequence_psnr(refs, tests)["psnr_y"]


def test_vvc_output_through_libvvenc(tmp_path, base_with_audio, restored_y4m):
    out = tmp_path / "restored.mkv"
    result = run("enhance", base_with_audio, "-o", out, "--codec", "vvc", "--preset", "faster", "--qp", "22", "--json")
    assert result.returncode == 0, result.stderr
    with media.InputFile(out) as inp:
        assert inp.info.codec == "vvc" and inp.info.bit_depth == 10
        assert inp.tags.get("genpost_postprocessors") == "wiener/2.4"
        kinds = sorted((o.kind, o.language) for o in inp.others)
        assert kinds == [("audio", "fra"), ("subtitle", "eng")]
        assert inp.info.language == "deu"
        frames = list(inp.frames())
    assert len(frames) == len(restored_y4m) == 33
    # PyAV's own VVC decoder reads libvvenc's stream, and it is the restored picture (not the base)
    assert _psnr_y(restored_y4m, frames) > 38


@pytest.mark.parametrize("ext, tagged", [(".mp4", True), (".266", False)])
def test_vvc_in_mp4_and_raw(tmp_path, base_with_audio, ext, tagged):
    out = tmp_path / f"r{ext}"
    result = run("enhance", base_with_audio, "-o", out, "--codec", "vvc", "--preset", "faster")
    assert result.returncode == 0, result.stderr
    with media.InputFile(out, fps=30000 / 1001 if ext == ".266" else None) as inp:
        assert inp.info.codec == "vvc"
        assert ("genpost_postprocessors" in inp.tags) == tagged
        assert sum(1 for _ in inp.frames()) == 33


def test_vvc_needs_a_container_that_holds_it(tmp_path, base_with_audio):
    line = one_line_error(run("enhance", base_with_audio, "-o", tmp_path / "o.265", "--codec", "vvc"), 2)
    assert ".265" in line
    one_line_error(run("enhance", base_with_audio, "-o", tmp_path / "o.mkv", "--codec", "vvc", "--crf", "20"), 2)
    assert list(tmp_path.iterdir()) == []


def test_post_filter_and_y4m_output_keep_provenance(tmp_path, base_with_audio, restored_y4m):
    out = tmp_path / "small.y4m"
    result = run("enhance", base_with_audio, "-o", out, "--vf-post", "scale=88:72")
    assert result.returncode == 0, result.stderr
    frames = decode_all(out)
    assert (frames[0].width, frames[0].height, len(frames)) == (88, 72, 33)
    exact = tmp_path / "exact.y4m"
    result = run("enhance", base_with_audio, "-o", exact, "--chain", "vvc-archive", "--codec", "y4m")
    assert result.returncode == 0, result.stderr
    assert b"XGENPOST_POSTPROCESSORS=wiener/2.4" in exact.read_bytes()[:200]
    for got, want in zip(decode_all(exact), restored_y4m):  # same frames as the PyAV route, 8 -> 10 bit by shift
        np.testing.assert_array_equal(got.y, want.y.astype(np.uint16) << 2)


def test_bad_filter_is_exit_2_before_any_work(tmp_path, base_with_audio):
    line = one_line_error(run("enhance", base_with_audio, "-o", tmp_path / "o.mkv", "--vf-pre", "scael=2:2"), 2)
    assert "scael" in line and list(tmp_path.iterdir()) == []


def test_pre_filter_that_resizes_makes_side_info_fall_back(tmp_path, base_with_audio):
    steps = chain.Chain(pre=["scale=88:72"])
    report = chain.enhance(base_with_audio, tmp_path / "o.mkv", steps, cli_profile=chain.OutputProfile(codec="ffv1"),
                           plugins=["wiener"])
    assert any("will not apply" in w for w in report.warnings)
    stats = report.per_plugin["wiener"]
    assert stats.with_side_info > 0 and stats.fallbacks == stats.with_side_info


def test_deinterlace_first_on_a_422_10bit_source(tmp_path, carphone):
    src = tmp_path / "interlaced422.mkv"
    ffmpeg("-i", str(carphone), "-frames:v", "8", "-vf", "tinterlace=interleave_top,fieldorder=tff",
           "-pix_fmt", "yuv422p10le", "-c:v", "ffv1", str(src))  # fmt: skip
    out = tmp_path / "progressive.mkv"
    result = run("enhance", src, "-o", out, "--chain", "deinterlace-first", "--plugin", "wiener", "--preset", "ultrafast")
    assert result.returncode == 0, result.stderr
    with media.InputFile(out) as inp:
        assert (inp.info.codec, inp.info.pix_fmt, inp.info.width, inp.info.height) == ("hevc", "yuv420p10le", 176, 144)
        assert inp.tags.get("genpost_postprocessors") == "wiener/2.4"
        assert sum(1 for _ in inp.frames()) == 8


def test_broadcast_hd_preset(tmp_path, carphone):
    src = tmp_path / "short.mkv"  # 6 frames with audio: 1080p x265 is the slow part
    ffmpeg("-i", str(carphone), "-f", "lavfi", "-i", "sine=duration=0.3", "-frames:v", "6", "-c:v", "ffv1",
           "-c:a", "aac", str(src))  # fmt: skip
    out = tmp_path / "hd.mkv"
    result = run("enhance", src, "-o", out, "--chain", ROOT / "filters" / "broadcast-hd.toml", "--preset", "ultrafast")
    assert result.returncode == 0, result.stderr
    assert "no post-processor applies" in result.stderr  # plugin = "auto" and this source has no side info
    with media.InputFile(out) as inp:
        assert (inp.info.width, inp.info.height, inp.info.bit_depth, inp.info.codec) == (1920, 1080, 10, "hevc")
        assert [o.kind for o in inp.others] == ["audio"]
        assert sum(1 for _ in inp.frames()) == 6


def test_ffmpeg_extra_is_declared():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    assert {"imageio-ffmpeg", "ffmpeg-python"} <= {d.split(">")[0].split("=")[0] for d in extras["ffmpeg"]}


def test_a_422_source_without_format_step_gets_a_hint(tmp_path, carphone):
    src = tmp_path / "s422.mkv"
    ffmpeg("-i", str(carphone), "-frames:v", "3", "-pix_fmt", "yuv422p", "-c:v", "ffv1", str(src))
    line = one_line_error(run("enhance", src, "-o", tmp_path / "o.mkv", "--codec", "vvc", "--plugin", "none"), 3)
    assert "C422" in line and "format" in line and not (tmp_path / "o.mkv").exists()


@pytest.mark.parametrize("codec", ["vvc", "libx265"])
def test_colour_description_survives(tmp_path, carphone, codec):
    src = tmp_path / "bt709.mkv"
    ffmpeg("-i", str(carphone), "-frames:v", "4", "-vf", "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
           "-c:v", "ffv1", str(src))  # fmt: skip
    with media.InputFile(src) as inp:
        assert inp.info.color.primaries == 1  # the source really carries it
    out = tmp_path / "o.mkv"
    result = run("enhance", src, "-o", out, "--codec", codec, "--plugin", "wiener", "--preset", "faster")
    assert result.returncode == 0, result.stderr
    with media.InputFile(out) as inp:
        c = inp.info.color
        assert (c.primaries, c.transfer, c.matrix, c.range) == (1, 1, 1, 1)


def test_the_ffmpeg_routes_default_output_is_lossless(tmp_path, base_with_audio, restored_y4m):
    """Without a preset or flag choosing a quality the ffmpeg route codes x265 losslessly (was CRF 18): the
    output holds exactly the restored frames, so it is never worse than its input."""
    import json

    out = tmp_path / "out.mkv"
    result = run("enhance", base_with_audio, "-o", out, "--vf-post", "null", "--json", "-q")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_coding"] == "libx265 lossless"
    got = decode_all(out)
    assert len(got) == len(restored_y4m)
    for a, b in zip(got, restored_y4m):
        for p, q in zip(a.planes, b.planes):
            np.testing.assert_array_equal(p, q)
