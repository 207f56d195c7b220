"""Colour and HDR metadata (primaries, transfer, matrix, range, ST 2086, CLL) between PyAV and ColorInfo,
and Frame <-> av.VideoFrame conversion (planes copied without line padding, native dtype)."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import numpy as np

from ..errors import MediaError
from ..types import ColorInfo, ContentLight, Frame, MasteringDisplay, dtype_for
from .container import SUPPORTED_PIX_FMTS, pix_fmt_for

# ---------------------------------------------------------------- colour and HDR


def _mastering_from_bytes(buf: bytes) -> MasteringDisplay | None:
    """AVMasteringDisplayMetadata: 10 AVRationals (RGB primaries, white point, min, max) and two flags."""
    if len(buf) < 88:
        return None
    vals = struct.unpack("<20i2i", buf[:88])
    rat = [Fraction(vals[i], vals[i + 1]) if vals[i + 1] else Fraction(0) for i in range(0, 20, 2)]
    has_primaries, has_luminance = vals[20], vals[21]
    if not (has_primaries and has_luminance):
        return None
    chroma = [round(r * 50000) for r in rat[:8]]
    return MasteringDisplay(
        primaries=((chroma[0], chroma[1]), (chroma[2], chroma[3]), (chroma[4], chroma[5])),
        white_point=(chroma[6], chroma[7]),
        min_luminance=round(rat[8] * 10000),
        max_luminance=round(rat[9] * 10000),
    )


def _content_light_from_bytes(buf: bytes) -> ContentLight | None:
    if len(buf) < 8:
        return None
    max_cll, max_fall = struct.unpack("<2I", buf[:8])
    return ContentLight(max_cll, max_fall)


def x265_hdr_params(color: ColorInfo) -> list[str]:
    """The x265-params that write ST 2086 / CLL SEI (x265 ignores frame side data)."""
    params = []
    md = color.mastering
    if md is not None:
        (rx, ry), (gx, gy), (bx, by) = md.primaries
        wx, wy = md.white_point
        params.append(
            f"master-display=G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})"
            f"L({md.max_luminance},{md.min_luminance})"
        )
    if color.content_light is not None:
        params.append(f"max-cll={color.content_light.max_cll},{color.content_light.max_fall}")
    return params


def color_of(cc, frame) -> ColorInfo:
    mastering = light = None
    if frame is not None:
        for entry in frame.side_data:  # PyAV 18.1.0 iterates the entries, 18.1.1 their types (a mapping)
            sd = entry if hasattr(entry, "type") else frame.side_data[entry]
            name = sd.type.name
            if name == "MASTERING_DISPLAY_METADATA":
                mastering = _mastering_from_bytes(bytes(sd))
            elif name == "CONTENT_LIGHT_LEVEL":
                light = _content_light_from_bytes(bytes(sd))
    src = frame if frame is not None else cc
    return ColorInfo(
        primaries=int(src.color_primaries),
        transfer=int(src.color_trc),
        matrix=int(src.colorspace),
        range=int(src.color_range),
        mastering=mastering,
        content_light=light,
    )


def set_color(cc, color: ColorInfo) -> None:
    cc.color_primaries = color.primaries
    cc.color_trc = color.transfer
    cc.colorspace = color.matrix
    cc.color_range = color.range


# ---------------------------------------------------------------- frames


def frame_from_av(vf: av.VideoFrame, index: int, pts=None, time_base=None) -> Frame:
    """Copy the three planes out of an av frame, dropping line padding, in native dtype."""
    fmt = vf.format.name
    if fmt not in SUPPORTED_PIX_FMTS:
        raise MediaError(f"unsupported pixel format {fmt} (genpost handles 8- and 10-bit 4:2:0)")
    depth = SUPPORTED_PIX_FMTS[fmt]
    dtype = dtype_for(depth)
    planes = []
    for plane in vf.planes:
        row = plane.line_size // dtype.itemsize
        arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, row)[:, : plane.width]
        planes.append(arr.copy())
    return Frame(
        *planes,
        bit_depth=depth,
        index=index,
        pts=vf.pts if pts is None else pts,
        time_base=vf.time_base if time_base is None else time_base,
        key_frame=bool(vf.key_frame),
    )


def frame_to_av(frame: Frame) -> av.VideoFrame:
    vf = av.VideoFrame(frame.width, frame.height, pix_fmt_for(frame.bit_depth))
    dtype = dtype_for(frame.bit_depth)
    for plane, data in zip(vf.planes, frame.planes):
        row = plane.line_size // dtype.itemsize
        dst = np.frombuffer(plane, dtype=dtype).reshape(plane.height, row)
        dst[:, : plane.width] = data
    vf.pts = frame.pts
    if frame.time_base is not None:
        vf.time_base = frame.time_base
    return vf


def to_rgb(frame: Frame, color: ColorInfo | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 RGB picture of ``frame`` by swscale, with the stream's matrix and range
    (BT.601 limited when unspecified, as FFmpeg assumes): for previews, never for processing."""
    vf = frame_to_av(frame.replace(pts=None, time_base=None))
    color = color or ColorInfo()
    matrix = color.matrix if color.matrix not in (2, 0) else 5  # unspecified -> BT.601 (SWS_CS_DEFAULT)
    rng = color.range if color.range in (1, 2) else 1
    try:
        rgb = vf.reformat(format="rgb24", src_colorspace=matrix, src_color_range=rng, dst_color_range=2)
    except (ValueError, av.error.FFmpegError):
        rgb = vf.reformat(format="rgb24")
    return rgb.to_ndarray()
