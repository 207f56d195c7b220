"""Measurement helpers on PyAV's filter graph and encoder: two-input comparison filters (psnr, ssim,
xpsnr) over Frames, and the plain decode -> encode baseline of ``genpost bench``."""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Iterator

import av

from ..errors import MediaError
from ..types import Frame
from .colour import frame_to_av
from .container import pix_fmt_for
from .decode import InputFile
from .encode import EncoderSettings, OutputFile

# ---------------------------------------------------------------- measurement helpers


class CompareFilter:
    """A two-input FFmpeg filter (psnr, ssim, xpsnr, ...) fed reference and test Frames with identical pts.

    Input 0 is the reference, input 1 the test (xpsnr takes its visual-activity weights from input 0).
    ``push`` returns the metadata of the frames the filter has released so far, ``close`` the rest.
    """

    def __init__(self, filter_name: str, width: int, height: int, bit_depth: int, rate=None, options=None):
        if filter_name == "xpsnr" and width * height < 2025:  # its block size is 0 there: SIGFPE in FFmpeg
            raise MediaError(f"xpsnr cannot measure a {width}x{height} picture (under 2025 luma samples)")
        self.rate = Fraction(rate or 25)
        self.time_base = 1 / self.rate
        self._next_pts = 0
        args = {
            "width": str(width),
            "height": str(height),
            "pix_fmt": pix_fmt_for(bit_depth),
            "time_base": str(self.time_base),
            "frame_rate": str(self.rate),
        }
        try:
            self.graph = av.filter.Graph()
            self._reference = self.graph.add("buffer", name="reference", **args)
            self._test = self.graph.add("buffer", name="test", **args)
            compare = self.graph.add(filter_name, options)
            self._sink = self.graph.add("buffersink")
            self._reference.link_to(compare, 0, 0)
            self._test.link_to(compare, 0, 1)
            compare.link_to(self._sink)
            self.graph.configure()
        except (ValueError, av.error.FFmpegError) as exc:
            raise MediaError(f"cannot build the {filter_name} filter graph ({exc})") from None

    def push(self, reference: Frame, test: Frame) -> list[dict[str, str]]:
        if reference.planes[0].shape != test.planes[0].shape or reference.bit_depth != test.bit_depth:
            raise MediaError("compared frames differ in size or bit depth")
        pts, self._next_pts = self._next_pts, self._next_pts + 1
        self._reference.push(frame_to_av(reference.replace(pts=pts, time_base=self.time_base)))
        self._test.push(frame_to_av(test.replace(pts=pts, time_base=self.time_base)))
        return self._drain()

    def close(self) -> list[dict[str, str]]:
        self._reference.push(None)
        self._test.push(None)
        return self._drain()

    def _drain(self) -> list[dict[str, str]]:
        out = []
        while True:
            try:
                out.append(dict(self._sink.pull().metadata))
            except (BlockingIOError, EOFError):
                return out


def filter_compare(reference, test, filter_name: str, rate=None, options=None) -> Iterator[dict[str, str]]:
    """Per-frame metadata of a two-input FFmpeg filter over paired Frames (e.g. ``lavfi.xpsnr.xpsnr.y``)."""
    comparer = None
    for ref, tst in zip(reference, test, strict=True):
        if comparer is None:
            comparer = CompareFilter(filter_name, ref.width, ref.height, ref.bit_depth, rate, options)
        yield from comparer.push(ref, tst)
    if comparer is not None:
        yield from comparer.close()


def plain_transcode(path, output, settings: EncoderSettings, fps=None, max_frames: int | None = None) -> dict:
    """PyAV decode straight into OutputFile's encoder and muxer, with no genpost Frames in between:
    the baseline of ``genpost bench``. Returns the frame count and the seconds spent per stage."""
    with InputFile(path, fps) as inp:
        out = OutputFile(output, inp.info, settings)
        frames, decode_s = 0, 0.0
        try:
            decoded = inp.container.decode(inp.video)
            while max_frames is None or frames < max_frames:
                start = time.perf_counter()
                vf = next(decoded, None)
                decode_s += time.perf_counter() - start
                if vf is None:
                    break
                vf.pict_type = av.video.frame.PictureType.NONE  # x265 picks frame types, as for new frames
                if inp.raw_format or vf.pts is None:
                    vf.pts, vf.time_base = frames, inp.info.time_base
                out.encode_av(vf)
                frames += 1
        except av.error.FFmpegError as exc:
            out.abort()
            raise MediaError(f"{path}: decode failed at frame {frames} ({exc.strerror or exc})") from None
        except BaseException:
            out.abort()
            raise
        out.close()
    return {"frames": frames, "decode": decode_s, **out.seconds}
