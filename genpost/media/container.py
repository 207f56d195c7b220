"""Containers and formats: which muxer an extension means, opening a file, demuxing past damage, and the
small records demux yields (video units, other streams' packets)."""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import av
from av.packet import packet_sidedata_type_from_literal

from ..errors import MediaError, UsageError
from ..types import Frame
from .limits import check_frame_size
from .y4m import CHROMA_LOCATION

RAW_FORMATS = {".265": "hevc", ".hevc": "hevc", ".h265": "hevc", ".266": "vvc", ".vvc": "vvc", ".h266": "vvc"}
RAW_INPUTS = {**RAW_FORMATS, ".264": "h264", ".h264": "h264"}  # raw Annex-B genpost reads (H.264: input only)
OUTPUT_FORMATS = {
    ".mkv": "matroska",
    ".mka": "matroska",
    ".mp4": "mp4",
    ".mov": "mov",
    ".ts": "mpegts",
    ".m2ts": "mpegts",
    ".y4m": "yuv4mpegpipe",
    **RAW_FORMATS,
}
SUPPORTED_PIX_FMTS = {"yuv420p": 8, "yuvj420p": 8, "yuv420p10le": 10}
ENCODERS = ("libx265", "libx264", "ffv1", "y4m")
SEI_CODECS = {"hevc": "hevc", "vvc": "vvc", "h266": "vvc"}


def pix_fmt_for(bit_depth: int) -> str:
    return "yuv420p" if bit_depth <= 8 else "yuv420p10le"


def output_format(path: str | os.PathLike, formats: dict[str, str] = OUTPUT_FORMATS, what: str = "") -> str:
    """The muxer ``path``'s extension means; an extension outside ``formats`` (what the command can write,
    ``what`` saying why) is bad usage, named with the path the user gave."""
    ext = Path(path).suffix.lower()
    if ext not in formats:
        said = f"not {ext!r}" if ext else "and it has none"
        raise UsageError(f"{path}: the output extension must be one of {', '.join(formats)}{what}, {said}")
    return formats[ext]


# ---------------------------------------------------------------- resource limits (genpost.media.limits)


def check_y4m_header(path: str) -> int:
    """Read a y4m header before FFmpeg does, so a broken or absurd one gets a message that names it; returns
    its chroma siting as FFmpeg's AVChromaLocation (PyAV does not expose it), 0 for other files."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head.startswith(b"YUV4MPEG2"):
        if Path(path).suffix.lower() == ".y4m":
            raise MediaError(f"{path}: not a y4m file (no YUV4MPEG2 header)")
        return 0
    line, newline, _ = head.partition(b"\n")
    if not newline:
        raise MediaError(f"{path}: the y4m header line is not terminated")
    fields = {tok[:1]: tok[1:] for tok in line.split()[1:]}
    try:
        width, height = int(fields[b"W"]), int(fields[b"H"])
    except (KeyError, ValueError):
        raise MediaError(f"{path}: the y4m header has no valid W and H") from None
    check_frame_size(path, width, height)
    return CHROMA_LOCATION.get(fields.get(b"C", b"420jpeg").decode("ascii", "replace"), 0)


BLOCK_ADD_ID = 1  # Matroska BlockAddID for genpost's BlockAdditional (8-byte big-endian prefix in FFmpeg)
BLOCK_ADDITIONAL = packet_sidedata_type_from_literal("matroska_block_additional")


def block_additional(packet) -> bytes | None:
    if not packet.has_sidedata("matroska_block_additional"):
        return None
    blob = bytes(packet.get_sidedata("matroska_block_additional"))
    return blob[8:] if len(blob) > 8 else None



@dataclass
class OtherStream:
    index: int
    kind: str  # audio, subtitle, data, attachment
    codec: str
    language: str | None


@dataclass
class VideoUnit:
    """One demuxed video packet (its bytes, for side info) and the frames its decode released."""

    data: bytes
    frames: list[Frame]
    packet: object = None  # opaque; hand it back to OutputFile.mux_video
    keyframes: list[int] = field(default_factory=list)  # indices of the frames the decoder marked key


@dataclass
class OtherPacket:
    packet: object  # opaque; hand it back to OutputFile.copy_packet
    stream: int


def open_container(path: str | os.PathLike, mode: str = "r", fmt: str | None = None, options=None):
    try:
        if mode == "r":  # tags of a damaged file need not be UTF-8
            return av.open(str(path), mode, format=fmt, options=options or {}, metadata_errors="replace")
        return av.open(str(path), mode, format=fmt, options=options or {})
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot open ({exc.strerror or exc})") from None


def demux_packets(container, streams, max_skips: int = 100_000):
    """``container.demux(streams)``, past packets of streams that appear mid-file (a damaged MPEG-TS can
    announce new ones; PyAV then fails to look the stream up): such a packet is skipped."""
    skips = 0
    while True:
        try:
            yield from container.demux(streams)
            return
        except IndexError:
            skips += 1
            if skips > max_skips:
                raise MediaError(f"{container.name}: too many packets of unknown streams") from None


def merge_by_time(a: Iterator, b: Iterator, key) -> Iterator:
    """Interleave two packet iterators by decode time so the muxer never buffers a whole stream."""
    return heapq.merge(a, b, key=key)


def pts_order(pts_list: list[int | None]) -> dict[int, int]:
    """Presentation index of each pts (packets arrive in decode order)."""
    return {pts: i for i, pts in enumerate(sorted(p for p in pts_list if p is not None))}


def versions() -> dict[str, str]:
    libs = av.library_versions
    return {"av": av.__version__, **{name: ".".join(map(str, libs[name])) for name in ("libavcodec", "libavfilter")}}
