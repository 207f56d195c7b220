"""genpost preview: a PNG any decoder reads, the right pictures in the right places, honest numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import CARPHONE, decode_all

from genpost import media, sideinfo
from genpost.eval import metrics, preview
from genpost.jobs import pipeline
from genpost.media import ffmpeg as gp_ffmpeg
from genpost.postprocessor import Context

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
GENPOST = [sys.executable, "-m", "genpost.cli"]
FRAME = 5


@pytest.fixture(scope="module")
def coded(tmp_path_factory, carphone):
    out = tmp_path_factory.mktemp("preview") / "base.mkv"
    settings = media.EncoderSettings(qp=37, preset="fast")
    pipeline.encode(carphone, out, settings, plugins=["wiener"], carriage="sei", options={"wiener.lambda_scale": "0.05"})
    return out


def png_rgb(path: Path) -> np.ndarray:
    """Decode a PNG with the ffmpeg binary (not our writer's code) to an (H, W, 3) array."""
    probe = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True, check=False).stderr
    size = next(tok for tok in probe.replace(",", " ").split() if "x" in tok and tok.split("x")[0].isdigit())
    w, h = (int(v) for v in size.split("x")[:2])
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3)


def png_text(path: Path) -> dict[str, str]:
    data, out, pos = path.read_bytes(), {}, 8
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert zlib.crc32(kind + body) == int.from_bytes(data[pos + 8 + n : pos + 12 + n], "big")
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + n
    return out


def test_side_by_side_with_reference(coded, tmp_path):
    out = tmp_path / "cmp.png"
    result = preview.preview(coded, out, FRAME, plugins=["wiener"], reference=CARPHONE)
    image = png_rgb(out)
    assert image.shape == (result["size"][1], result["size"][0], 3)

    base = decode_all(coded)[FRAME]
    source = decode_all(CARPHONE)[FRAME]
    with media.InputFile(coded) as inp:
        index = pipeline.collect_side_info(inp)  # the frame may reference the period's filter set: give it
        ctx = Context(stream=inp.info, update=index.get(sideinfo.update_format("wiener/1"), FRAME))
    restored = pipeline.load_postprocessors(["wiener"])[0].restore(base, index.get("wiener/1", FRAME), ctx)
    assert not np.array_equal(restored.y, base.y)

    # the panels: base on the left, restored on the right, below the label bar
    top = preview.text_bar(["X"], 176, 1).shape[0]
    np.testing.assert_array_equal(image[top : top + 144, :176], media.to_rgb(base))
    np.testing.assert_array_equal(image[top : top + 144, 180:356], media.to_rgb(restored))

    # the numbers: PSNR recomputed here, VMAF-NEG by a separate libvmaf run on ffmpeg-extracted frames
    psnr = lambda ref, test: metrics.psnr(metrics.frame_mse(ref, test)[0], 8)
    assert result["base"]["psnr_y"] == pytest.approx(psnr(source, base), abs=1e-3)
    assert result["restored"]["psnr_y"] == pytest.approx(psnr(source, restored), abs=1e-3)
    pick = f"select=eq(n\\,{FRAME})"
    ref_y4m, base_y4m = tmp_path / "ref.y4m", tmp_path / "base.y4m"
    for src, dst in ((CARPHONE, ref_y4m), (coded, base_y4m)):
        subprocess.run([FFMPEG, "-v", "error", "-i", str(src), "-vf", pick, "-frames:v", "1", str(dst)], check=True)
    direct = gp_ffmpeg.vmaf(base_y4m, ref_y4m)["frames"][0]
    assert result["base"]["vmaf_neg"] == pytest.approx(direct, abs=0.01)
    assert 0 < result["restored"]["vmaf_neg"] <= 100

    text = png_text(out)
    assert json.loads(text["genpost"])["base"] == result["base"]
    assert f"PSNR-Y {result['restored']['psnr_y']:.2f} DB" in text["Comment"]
    assert "VMAF-NEG" in text["Comment"] and "WIENER/2.4" in text["Comment"].upper()


def test_split_crop_zoom_without_reference(coded, tmp_path):
    out = tmp_path / "split.png"
    result = preview.preview(coded, out, FRAME, mode="split", crop="40x30+20+10", zoom=3, with_vmaf=False)
    assert result["plugins"] == ["wiener/2.4"]  # picked from the side info
    assert result["reference"] == "base" and "vmaf_neg" not in result["restored_vs_base"]
    image = png_rgb(out)
    assert image.shape[1] == 120  # one 40-pixel crop, zoomed 3x
    top = preview.text_bar(["X"], 120, 1).shape[0]
    base_rgb = media.to_rgb(decode_all(coded)[FRAME])[10:40, 20:60].repeat(3, 0).repeat(3, 1)
    np.testing.assert_array_equal(image[top : top + 90, :58], base_rgb[:, :58])  # left of the split line
    assert "NO REFERENCE" in png_text(out)["Comment"]


def test_diff_mode_shows_amplified_differences(coded, tmp_path):
    """--mode diff: heat maps of |restored - base| and |restored - source|, each 8-bit luma step times the
    gain; black exactly where the pictures agree."""
    out = tmp_path / "diff.png"
    result = preview.preview(coded, out, FRAME, plugins=["wiener"], reference=CARPHONE, mode="diff", gain=16, with_vmaf=False)
    assert result["gain"] == 16 and result["mode"] == "diff"
    image = png_rgb(out)
    base, source = decode_all(coded)[FRAME], decode_all(CARPHONE)[FRAME]
    with media.InputFile(coded) as inp:
        index = pipeline.collect_side_info(inp)  # the frame may reference the period's filter set: give it
        ctx = Context(stream=inp.info, update=index.get(sideinfo.update_format("wiener/1"), FRAME))
    restored = pipeline.load_postprocessors(["wiener"])[0].restore(base, index.get("wiener/1", FRAME), ctx)
    top = preview.text_bar(["X"], 176, 1).shape[0]
    left, right = image[top : top + 144, :176].astype(int), image[top : top + 144, 180:356].astype(int)
    for panel, other in ((left, base), (right, source)):
        d = np.abs(restored.y.astype(int) - other.y.astype(int))
        assert (panel[d == 0] == 0).all()  # unchanged samples are black
        one = d == 1  # one step x 16 = 16 of 255 on the red ramp (a third of the map): red 48, no green/blue
        assert one.any() and (panel[one] == [48, 0, 0]).all()
        assert (panel[d >= 16] == 255).all()  # 16 steps x 16 saturate to white
    assert (left.sum(-1) > 0).mean() < (right.sum(-1) > 0).mean()  # the filter moved fewer samples than coding did


def test_cli_json_and_errors(coded, tmp_path):
    ok = subprocess.run([*GENPOST, "preview", str(coded), "--frame", "2", "-o", str(tmp_path / "a.png"), "--json"],
                        capture_output=True, text=True, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["restored_vs_base"]["vmaf_neg"] > 0

    bad = subprocess.run([*GENPOST, "preview", str(coded), "--frame", "99", "-o", str(tmp_path / "b.png")],
                         capture_output=True, text=True, check=False)  # fmt: skip
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "has only 33 frames" in lines[0], bad.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"crop": "10x10"}, "W:H:X:Y"),
        ({"crop": "100:100:100:100"}, "leaves the 176x144 frame"),
        ({"mode": "wipe"}, "--mode"),
        ({"zoom": 0}, "--zoom"),
        ({"mode": "diff", "gain": 0}, "--gain"),
        ({"reference": CARPHONE.parent / "vvc" / "bigbuckbunny_416x240_25_ra_qp27.266"}, "--reference is 416x240"),
    ],
)
def test_bad_requests(coded, tmp_path, kwargs, words):
    with pytest.raises(preview.PreviewError, match=words.replace("+", r"\+")):
        preview.preview(coded, tmp_path / "b.png", FRAME, with_vmaf=False, **kwargs)
    with pytest.raises(preview.PreviewError, match="PNG"):
        preview.preview(coded, tmp_path / "b.jpg", FRAME)
    assert list(tmp_path.iterdir()) == []


def test_captions_are_drawn_and_wrapped():
    bar = preview.text_bar(["PSNR-Y 31.20 DB"], 200, 2)
    assert bar.shape[1] == 200 and (bar != bar[0, 0]).any()  # the text is on the bar
    assert (preview.text_bar([" "], 200, 2) == bar[0, 0]).all()  # a blank line draws nothing
    assert preview.text_bar(["A", "B"], 200, 1).shape[0] > preview.text_bar(["A"], 200, 1).shape[0]
    lines = preview.wrap("FRAME 5  " + "WORD " * 40 + "\nSECOND", 176, 1)
    assert len(lines) > 3 and lines[-1] == "SECOND" and " ".join(lines[:-1]).split() == ("FRAME 5 " + "WORD " * 40).split()
