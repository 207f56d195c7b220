"""``genpost preview``: one frame, base vs restored, as a PNG with its PSNR-Y and VMAF-NEG in the caption.

The picture is for eyes (side by side, or one frame split down the middle, optionally cropped and
zoomed); the numbers are per frame on the whole frame. With ``--reference SRC`` both the base and the
restored frame are scored against the source; without one, the caption scores the restored frame
against the base (how far the post-processor moved it), and says so. Pillow draws the caption in its
default font and writes the PNG, with the caption repeated in its text chunks (``genpost`` holds the
numbers as JSON).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .. import media
from ..errors import GenpostError
from ..install import MissingExtra, hint
from ..jobs.outputs import atomic_output, check_paths
from ..media.y4m import Y4MHeader, Y4MWriter
from ..options import PreviewMode
from ..runner.session import DecodeSession
from ..types import Frame, StreamInfo, to_bit_depth
from . import metrics

DEFAULT_GAIN = 8


class PreviewError(GenpostError):
    """A preview request that cannot be met (bad frame number, crop, reference size)."""

    exit_code = 2


# ---------------------------------------------------------------- crop geometry


@dataclass(frozen=True)
class Crop:
    width: int
    height: int
    x: int
    y: int

    @classmethod
    def parse(cls, text: str) -> Crop:
        """``W:H:X:Y`` (FFmpeg's crop order) or ``WxH+X+Y`` (X11 geometry)."""
        m = re.fullmatch(r"(\d+):(\d+):(\d+):(\d+)", text) or re.fullmatch(r"(\d+)x(\d+)\+(\d+)\+(\d+)", text)
        if not m:
            raise PreviewError(f"--crop wants W:H:X:Y or WxH+X+Y, got {text!r}")
        crop = cls(*map(int, m.groups()))
        if crop.width == 0 or crop.height == 0:
            raise PreviewError(f"--crop {text}: empty area")
        return crop

    def check(self, width: int, height: int) -> None:
        if self.x + self.width > width or self.y + self.height > height:
            raise PreviewError(f"--crop {self.width}x{self.height}+{self.x}+{self.y} leaves the {width}x{height} frame")

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        return rgb[self.y : self.y + self.height, self.x : self.x + self.width]

    def __str__(self) -> str:
        return f"{self.width}x{self.height}+{self.x}+{self.y}"


# ---------------------------------------------------------------- captions and PNG (Pillow)

FONT_SIZE = 10  # Pillow's default font, in pixels, at scale 1 (scale 2 on wide pictures)


def pillow():
    """PIL's modules, or MissingExtra (exit 2, before any work) naming the pip line."""
    try:
        from PIL import Image, ImageDraw, ImageFont, PngImagePlugin
    except ImportError:
        raise MissingExtra(f"preview draws its PNG with Pillow: {hint('ffmpeg', ('pillow',))}") from None
    return Image, ImageDraw, ImageFont, PngImagePlugin


def font(scale: int):
    return pillow()[2].load_default(size=FONT_SIZE * scale)


def wrap(text: str, width_px: int, scale: int) -> list[str]:
    """``text``'s lines, broken between words where a line would be wider than ``width_px``."""
    face, room = font(scale), width_px - 4 * scale
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            longer = f"{line} {word}" if line else word
            if line and face.getlength(longer) > room:
                lines.append(line)
                line = word
            else:
                line = longer
        lines.append(line)
    return lines


def text_bar(lines: list[str], width: int, scale: int, fg=(255, 255, 255), bg=(24, 24, 24)) -> np.ndarray:
    """An (H, ``width``, 3) bar with ``lines`` drawn in Pillow's default font (clipped at the right edge)."""
    Image, ImageDraw = pillow()[:2]
    face, pad = font(scale), 2 * scale
    ascent, descent = face.getmetrics()
    step = ascent + descent
    bar = Image.new("RGB", (width, len(lines) * step + 2 * pad), bg)
    draw = ImageDraw.Draw(bar)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * step), line, fill=fg, font=face)
    return np.array(bar)


def write_png(path: str | os.PathLike, rgb: np.ndarray, text: dict[str, str] | None = None) -> None:
    """An 8-bit RGB PNG with ``text`` in its text chunks, written atomically."""
    Image, _, _, PngImagePlugin = pillow()
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    with atomic_output(path) as tmp:
        Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(tmp, format="PNG", pnginfo=info)


# ---------------------------------------------------------------- metrics


def _write_y4m(path: str, frames: list[Frame], rate: Fraction | None) -> None:
    first = frames[0]
    info = StreamInfo(first.width, first.height, first.bit_depth, "rawvideo", None, rate or Fraction(25))
    with open(path, "wb") as fh:
        writer = Y4MWriter(fh, Y4MHeader.for_stream(info))
        for f in frames:
            writer.write(f)


def vmaf_neg(reference: Frame, tests: list[Frame]) -> list[float]:
    """VMAF-NEG of each test frame against ``reference`` (one libvmaf run; the reference repeats, so
    the motion feature is 0 for every frame alike, as for any single-frame VMAF)."""
    from ..media import ffmpeg

    tests = [to_bit_depth(t, reference.bit_depth) for t in tests]
    with tempfile.TemporaryDirectory(prefix="genpost-preview-") as tmp:
        dist, ref = os.path.join(tmp, "dist.y4m"), os.path.join(tmp, "ref.y4m")
        _write_y4m(dist, tests, None)
        _write_y4m(ref, [reference] * len(tests), None)
        return [round(float(v), 3) for v in ffmpeg.vmaf(dist, ref)["frames"]]


def psnr_y(reference: Frame, test: Frame) -> float:
    return round(metrics.psnr(metrics.frame_mse(reference, test)[0], reference.bit_depth), 3)


def score(base: Frame, restored: Frame, reference: Frame | None, with_vmaf: bool = True) -> dict:
    if reference is None:
        out = {"reference": "base", "restored_vs_base": {"psnr_y": psnr_y(base, restored)}}
        if with_vmaf:
            out["restored_vs_base"]["vmaf_neg"] = vmaf_neg(base, [restored])[0]
        return out
    out = {"reference": "source", "base": {"psnr_y": psnr_y(reference, base)},
           "restored": {"psnr_y": psnr_y(reference, restored)}}  # fmt: skip
    if with_vmaf:
        out["base"]["vmaf_neg"], out["restored"]["vmaf_neg"] = vmaf_neg(reference, [base, restored])
    return out


def caption(index: int, plugins: list[str], scores: dict, crop: Crop | None) -> str:
    head = f"FRAME {index}  " + (" + ".join(plugins) or "NO POST-PROCESSOR") + (f"  CROP {crop}" if crop else "")
    if scores["reference"] == "base":
        s = scores["restored_vs_base"]
        line = f"NO REFERENCE: RESTORED VS BASE PSNR-Y {s['psnr_y']:.2f} DB"
        if "vmaf_neg" in s:
            line += f"  VMAF-NEG {s['vmaf_neg']:.2f}"
        return f"{head}\n{line}"
    b, r = scores["base"], scores["restored"]
    base = f"BASE PSNR-Y {b['psnr_y']:.2f} DB" + (f"  VMAF-NEG {b['vmaf_neg']:.2f}" if "vmaf_neg" in b else "")
    rest = f"RESTORED PSNR-Y {r['psnr_y']:.2f} DB ({r['psnr_y'] - b['psnr_y']:+.2f})"
    if "vmaf_neg" in r:
        rest += f"  VMAF-NEG {r['vmaf_neg']:.2f} ({r['vmaf_neg'] - b['vmaf_neg']:+.2f})"
    return f"{head}\n{base}\n{rest}"


# ---------------------------------------------------------------- difference heat maps


def heat(a: Frame, b: Frame, gain: int) -> np.ndarray:
    """|a - b| of the luma, in 8-bit steps, times ``gain``, as an (H, W, 3) black-red-yellow-white heat map:
    a difference of one 8-bit step shows at gain 8 as a dark red, of 32 steps as white."""
    b = to_bit_depth(b, a.bit_depth)
    d = np.abs(a.y.astype(np.float64) - b.y.astype(np.float64)) / (1 << (a.bit_depth - 8)) * gain
    v = np.clip(d, 0.0, 255.0) / 255.0 * 3.0  # 0..1 red, 1..2 green, 2..3 blue
    rgb = np.stack([np.clip(v, 0, 1), np.clip(v - 1, 0, 1), np.clip(v - 2, 0, 1)], axis=-1)
    return (rgb * 255 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------- composing


def compose(base: np.ndarray, restored: np.ndarray, mode: str, text: str, labels: tuple[str, str]) -> np.ndarray:
    h, w, _ = base.shape
    if mode == "split":
        half = w // 2
        pic = np.concatenate([base[:, :half], restored[:, half:]], axis=1)
        pic[:, max(0, half - 1) : half + 1] = (255, 255, 255)
        width = w
        scale = 1 if width < 480 else 2
        label = text_bar([f"{labels[0]} | {labels[1]}"], width, scale)
    else:
        gap = np.full((h, 4, 3), 128, np.uint8)
        pic = np.concatenate([base, gap, restored], axis=1)
        width = pic.shape[1]
        scale = 1 if width < 480 else 2
        left, right = text_bar([labels[0]], w, scale), text_bar([labels[1]], w, scale)
        label = np.concatenate([left, np.full((left.shape[0], 4, 3), 128, np.uint8), right], axis=1)
    bar = text_bar(wrap(text, width, scale), width, scale)
    return np.concatenate([label, pic, bar], axis=0)


def _frame_at(inp: media.InputFile, n: int) -> Frame:
    last = -1
    for frame in inp.frames():
        if frame.index == n:
            return frame
        last = frame.index
    raise PreviewError(f"--frame {n}: {inp.path} has only {last + 1} frames")


def preview(
    input: str | os.PathLike,
    output: str | os.PathLike,
    frame: int = 0,
    *,
    plugins: list[str] | None = None,
    sidecar: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    mode: str = "side",
    crop: str | None = None,
    zoom: int = 1,
    fps: Fraction | None = None,
    options: dict[str, str] | None = None,
    with_vmaf: bool = True,
    device: str = "cpu",
    gain: int = DEFAULT_GAIN,
) -> dict:
    """Restore frame ``frame`` of ``input`` and write the comparison PNG; returns the numbers.

    ``mode="diff"`` shows amplified |restored - base| beside |restored - source| (with ``reference``) or
    beside the restored frame (without), so changes of a step or two become visible."""
    if mode not in [m.value for m in PreviewMode]:
        raise PreviewError(f"--mode must be one of {', '.join(PreviewMode)}, got {mode!r}")
    if not 1 <= gain <= 256:
        raise PreviewError(f"--gain must be 1..256, got {gain}")
    if frame < 0:
        raise PreviewError(f"--frame must be >= 0, got {frame}")
    if not 1 <= zoom <= 16:
        raise PreviewError(f"--zoom must be 1..16, got {zoom}")
    if Path(output).suffix.lower() != ".png":
        raise PreviewError(f"preview writes PNG: give an output ending in .png, got {output}")
    check_paths([input, sidecar, reference], output)
    pillow()
    if with_vmaf:
        from ..media import ffmpeg

        ffmpeg.require_vmaf("preview's VMAF-NEG", "ffmpeg", ", or give --no-vmaf")
    area = Crop.parse(crop) if crop else None
    with media.InputFile(input, fps) as inp:
        session = DecodeSession.open(inp, sidecar, plugins, options, device)  # as enhance would run it
        chain, warnings = session.chain, session.warnings
        base = _frame_at(inp, frame)
        info = inp.info
    report = session.report(output)
    restorer = session.restorer(info, report)
    restored = restorer(base)
    failed = restorer.errors
    ref = None
    if reference is not None:
        with media.InputFile(reference) as src:
            ref = _frame_at(src, frame)
        if (ref.width, ref.height) != (base.width, base.height):
            raise PreviewError(f"--reference is {ref.width}x{ref.height}, the input {base.width}x{base.height}")
    scores = score(base, restored, ref, with_vmaf)
    provenance = [f"{p.name}/{p.version}" for p in chain]
    text = caption(frame, provenance, scores, area)
    pictures = []
    if mode == "diff":
        right = heat(restored, ref, gain) if ref is not None else media.to_rgb(restored, info.color)
        shown = [heat(restored, base, gain), right]
        labels = (f"|RESTORED-BASE| X{gain}", f"|RESTORED-SOURCE| X{gain}" if ref is not None else "RESTORED")
    else:
        shown = [media.to_rgb(f, info.color) for f in (base, restored)]
        labels = ("BASE", "RESTORED" + (" (BASE KEPT: PAYLOAD REJECTED)" if failed else ""))
    for rgb in shown:
        if area is not None:
            area.check(rgb.shape[1], rgb.shape[0])
            rgb = area.apply(rgb)
        pictures.append(rgb.repeat(zoom, 0).repeat(zoom, 1) if zoom > 1 else rgb)
    image = compose(pictures[0], pictures[1], "side" if mode == "diff" else mode, text, labels)
    result = {"input": str(input), "frame": frame, "plugins": provenance, "mode": mode, "crop": str(area) if area else None,
              "zoom": zoom, "gain": gain if mode == "diff" else None, "fallback": bool(failed), "warnings": warnings,
              **scores}  # fmt: skip
    write_png(output, image, {"Title": f"genpost preview of {Path(input).name}", "Comment": text.replace("\n", " | "),
                              "genpost": json.dumps(result)})  # fmt: skip
    result["output"] = str(output)
    result["size"] = [int(image.shape[1]), int(image.shape[0])]
    return result
