"""The only package that imports av: open, demux, decode, encode and mux, keeping pts and colour.

The pipeline sees plain ``Frame`` objects and opaque packet handles; it never touches av objects.
Names follow FFmpeg's verbs (demux, decode, encode, mux) as PyAV does.

    container   extensions and muxers, opening and demuxing, the records demux yields
    colour      colour/HDR metadata and Frame <-> av.VideoFrame
    decode      InputFile: demux + decode to Frames, damage counting, side channels; concat_packets: the
                packets of segments joined with increasing dts (callers never set packet timing themselves)
    encode      EncoderSettings, OutputFile: encode or copy, mux with the other streams and side info
    measure     two-input comparison filters (psnr, ssim, xpsnr) and the bench's plain transcode

Everything public is importable from ``genpost.media`` itself.
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
