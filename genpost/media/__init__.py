"""Bytes in and out of Frames: open, demux, decode, encode and mux, keeping pts and colour; the only package
that imports av.

The pipeline sees plain ``Frame`` objects and opaque packet handles; it never touches av objects.
Names follow FFmpeg's verbs (demux, decode, encode, mux) as PyAV does.

    container   extensions and muxers, opening and demuxing, the records demux yields
    colour      colour/HDR metadata and Frame <-> av.VideoFrame
    decode      InputFile: demux + decode to Frames, damage counting, side channels; concat_packets: the
                packets of segments joined with increasing dts (callers never set packet timing themselves)
    encode      EncoderSettings, OutputFile: encode or copy, mux with the other streams and side info
    measure     two-input comparison filters (psnr, ssim, xpsnr) and the bench's plain transcode
    damage      decode damage counted as FFmpeg does; lost pictures concealed, frames and timing kept
    limits      resource limits checked before memory is committed (plain Python, no av)
    y4m         YUV4MPEG2 over pipes, one frame at a time (plain Python, no av)
    ffmpeg      the ffmpeg binary (libvmaf, libvvenc): its path and VMAF
    ffmpeg_tools  the ffmpeg binary as a filter/encoder stage: y4m over pipes, filters checked up front

Everything public of the PyAV modules is importable from ``genpost.media`` itself; the others by their
module (``genpost.media.y4m``, ``genpost.media.ffmpeg``, ...).
"""

from __future__ import annotations

from ..errors import MediaError
from ..types import ColorInfo, ContentLight, Frame, MasteringDisplay, StreamInfo
from .colour import (
    color_of,
    frame_from_av,
    frame_to_av,
    set_color,
    to_rgb,
    x265_hdr_params,
)
from .container import (
    BLOCK_ADD_ID,
    ENCODERS,
    OUTPUT_FORMATS,
    RAW_FORMATS,
    SEI_CODECS,
    SUPPORTED_PIX_FMTS,
    OtherPacket,
    OtherStream,
    VideoUnit,
    block_additional,
    check_y4m_header,
    merge_by_time,
    open_container,
    output_format,
    pix_fmt_for,
    pts_order,
    versions,
)
from .decode import InputFile, concat_packets
from .encode import EncoderSettings, OutputFile
from .measure import CompareFilter, filter_compare, plain_transcode

__all__ = [
    "BLOCK_ADD_ID",
    "ENCODERS",
    "OUTPUT_FORMATS",
    "RAW_FORMATS",
    "SEI_CODECS",
    "SUPPORTED_PIX_FMTS",
    "ColorInfo",
    "CompareFilter",
    "ContentLight",
    "EncoderSettings",
    "Frame",
    "InputFile",
    "MasteringDisplay",
    "MediaError",
    "OtherPacket",
    "OtherStream",
    "OutputFile",
    "StreamInfo",
    "VideoUnit",
    "block_additional",
    "check_y4m_header",
    "color_of",
    "concat_packets",
    "filter_compare",
    "frame_from_av",
    "frame_to_av",
    "merge_by_time",
    "open_container",
    "output_format",
    "pix_fmt_for",
    "plain_transcode",
    "pts_order",
    "set_color",
    "to_rgb",
    "versions",
    "x265_hdr_params",
]
