"""The only module that imports av: open, demux, decode, encode and mux, keeping pts and colour.

The pipeline sees plain ``Frame`` objects and opaque packet handles; it never touches av objects.
Names follow FFmpeg's verbs (demux, decode, encode, mux) as PyAV does.
"""

from __future__ import annotations

import heapq
import os
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.packet import PacketSideData, packet_sidedata_type_from_literal

from .types import ColorInfo, ContentLight, Frame, MasteringDisplay, StreamInfo, dtype_for


class MediaError(Exception):
    """A file cannot be read or written as asked; the message is one line for the user."""

    exit_code = 3


RAW_FORMATS = {".265": "hevc", ".hevc": "hevc", ".h265": "hevc", ".266": "vvc", ".vvc": "vvc", ".h266": "vvc"}
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
_SEI_CODECS = {"hevc": "hevc", "vvc": "vvc", "h266": "vvc"}


def pix_fmt_for(bit_depth: int) -> str:
    return "yuv420p" if bit_depth <= 8 else "yuv420p10le"


def output_format(path: str | os.PathLike) -> str:
    ext = Path(path).suffix.lower()
    if ext not in OUTPUT_FORMATS:
        raise MediaError(f"unknown output extension {ext or '(none)'!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    return OUTPUT_FORMATS[ext]


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


def _color_of(cc, frame) -> ColorInfo:
    mastering = light = None
    if frame is not None:
        for sd in frame.side_data:
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


def _set_color(cc, color: ColorInfo) -> None:
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


# ---------------------------------------------------------------- input

BLOCK_ADD_ID = 1  # Matroska BlockAddID for genpost's BlockAdditional (8-byte big-endian prefix in FFmpeg)
_BLOCK_ADDITIONAL = packet_sidedata_type_from_literal("matroska_block_additional")


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


@dataclass
class OtherPacket:
    packet: object  # opaque; hand it back to OutputFile.copy_packet
    stream: int


def _open_container(path: str | os.PathLike, mode: str = "r", fmt: str | None = None, options=None):
    try:
        return av.open(str(path), mode, format=fmt, options=options or {})
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot open ({exc.strerror or exc})") from None


class InputFile:
    """A demuxer + video decoder that yields genpost Frames with their pts kept.

    Raw Annex-B streams carry no timing: give ``fps`` and frames get pts = index, time_base = 1/fps.
    """

    def __init__(self, path: str | os.PathLike, fps: Fraction | float | str | None = None):
        self.path = str(path)
        if not os.path.isfile(self.path):
            raise MediaError(f"{path}: no such file")
        if os.path.getsize(self.path) == 0:
            raise MediaError(f"{path}: file is empty")
        self.raw_format = RAW_FORMATS.get(Path(self.path).suffix.lower())
        self.fps = Fraction(str(fps)) if fps is not None else None
        if self.fps is not None and self.fps <= 0:
            raise MediaError(f"--fps must be positive, got {fps}")
        self.container = _open_container(self.path, fmt=self.raw_format)
        if not self.container.streams.video:
            self.close()
            raise MediaError(f"{path}: no video stream")
        self.video = self.container.streams.video[0]
        self.codec = self.video.codec_context.name
        self.info = self._probe()

    # -- probing
    def _probe(self) -> StreamInfo:
        first = None
        probe = _open_container(self.path, fmt=self.raw_format)
        try:
            for vf in probe.decode(video=0):
                first = vf
                break
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.path}: cannot decode video ({exc.strerror or exc})") from None
        finally:
            probe.close()
        if first is None:
            raise MediaError(f"{self.path}: no decodable video frame")
        fmt = first.format.name
        if fmt not in SUPPORTED_PIX_FMTS:
            raise MediaError(f"{self.path}: unsupported pixel format {fmt} (genpost handles 8/10-bit 4:2:0)")
        cc = self.video.codec_context
        rate = self.fps or self.video.average_rate or self.video.guessed_rate
        if self.raw_format:
            rate = self.fps
        time_base = Fraction(1, 1) / self.fps if self.raw_format and self.fps else self.video.time_base
        lang = self.video.metadata.get("language")
        return StreamInfo(
            width=first.width,
            height=first.height,
            bit_depth=SUPPORTED_PIX_FMTS[fmt],
            codec=self.codec,
            time_base=time_base,
            rate=Fraction(rate) if rate else None,
            frames=self.video.frames or None,
            color=_color_of(cc, first),
            pix_fmt=pix_fmt_for(SUPPORTED_PIX_FMTS[fmt]),
            language=lang,
        )

    @property
    def others(self) -> list[OtherStream]:
        out = []
        for s in self.container.streams:
            if s.type in ("audio", "subtitle", "data", "attachment") and s is not self.video:
                codec = s.codec_context.name if s.codec_context is not None else "unknown"
                out.append(OtherStream(s.index, s.type, codec, s.metadata.get("language")))
        return out

    @property
    def sei_codec(self) -> str | None:
        """'hevc' or 'vvc' when this stream can carry genpost SEI."""
        return _SEI_CODECS.get(self.codec)

    @property
    def timed(self) -> bool:
        return not self.raw_format or self.fps is not None

    # -- demux and decode
    def _to_frame(self, vf, index: int) -> Frame:
        if vf.pts is None or self.raw_format:
            if self.fps is None:
                return frame_from_av(vf, index, pts=None, time_base=None)
            return frame_from_av(vf, index, pts=index, time_base=self.info.time_base)
        return frame_from_av(vf, index, time_base=vf.time_base or self.video.time_base)

    def demux(self, copy_others: bool = True) -> Iterator[VideoUnit | OtherPacket]:
        """Packets in file order; video packets come with the frames their decode produced."""
        index = 0
        streams = [self.video] + ([s for s in self.container.streams if s.index in {o.index for o in self.others}] if copy_others else [])
        try:
            for packet in self.container.demux(streams):
                if packet.stream.index != self.video.index:
                    if packet.dts is not None or packet.size:
                        yield OtherPacket(packet, packet.stream.index)
                    continue
                data = bytes(packet) if packet.size else b""
                frames = []
                for vf in self.video.codec_context.decode(packet if packet.size else None):
                    frames.append(self._to_frame(vf, index))
                    index += 1
                if data or frames:
                    yield VideoUnit(data, frames, packet if packet.size else None)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.path}: decode failed at frame {index} ({exc.strerror or exc})") from None
        except MediaError:
            raise

    def frames(self) -> Iterator[Frame]:
        for unit in self.demux(copy_others=False):
            if isinstance(unit, VideoUnit):
                yield from unit.frames

    def side_channels(self) -> Iterator[tuple[str, bytes]]:
        """Every byte string that may hold side info, without decoding: ("packet", video packet bytes),
        ("block_additional", MKV BlockAdditional bytes), ("data", data-track packet bytes)."""
        container = _open_container(self.path, fmt=self.raw_format)
        video = container.streams.video[0]
        data_streams = [s for s in container.streams if s.type == "data"]
        try:
            for packet in container.demux([video] + data_streams):
                if not packet.size:
                    continue
                if packet.stream.index != video.index:
                    yield "data", bytes(packet)
                    continue
                yield "packet", bytes(packet)
                extra = block_additional(packet)
                if extra:
                    yield "block_additional", extra
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.path}: demux failed ({exc.strerror or exc})") from None
        finally:
            container.close()

    def video_packets(self) -> Iterator[tuple[bytes, object]]:
        """(bytes, opaque packet) of every video packet, in decode order, without decoding."""
        for packet in self.container.demux(self.video):
            if packet.size:
                yield bytes(packet), packet

    def packet_time(self, packet) -> float:
        ts = packet.dts if packet.dts is not None else packet.pts
        return float(ts * packet.time_base) if ts is not None and packet.time_base else 0.0

    def other_packets(self) -> Iterator[OtherPacket]:
        streams = [s for s in self.container.streams if s.index in {o.index for o in self.others}]
        if not streams:
            return
        for packet in self.container.demux(streams):
            if packet.size:
                yield OtherPacket(packet, packet.stream.index)

    def close(self) -> None:
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------- output


@dataclass
class EncoderSettings:
    codec: str | None = None  # libx265 (the default) | libx264 | ffv1 | y4m | copy
    bit_depth: int = 0  # 0: the input's
    qp: int | None = None
    crf: float | None = None
    preset: str = "medium"
    keyint: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


class OutputFile:
    """A muxer with one video stream (encoded or copied) and the input's other streams copied untouched."""

    def __init__(
        self,
        path: str | os.PathLike,
        info: StreamInfo,
        settings: EncoderSettings,
        template: InputFile | None = None,
        copy_from: InputFile | None = None,
        metadata: dict[str, str] | None = None,
        data_track: bool = False,
        fmt: str | None = None,
    ):
        self.path = str(path)
        self.format = fmt or output_format(path)
        self.info = info
        self.settings = settings
        # keep the source's timestamps: no shifting of the first B-frame dts into pts
        options = {} if self.format in ("yuv4mpegpipe", "hevc", "vvc") else {"avoid_negative_ts": "disabled"}
        self.container = _open_container(self.path, "w", fmt=self.format, options=options)
        self._stream_map: dict[int, object] = {}
        self.data_stream = None
        try:
            self.video = self._add_video(copy_from)
            if template is not None:
                self._add_others(template)
            if data_track:
                self.data_stream = self._add_data_track()
            for key, value in (metadata or {}).items():
                self.container.metadata[key] = value
        except Exception:
            self.container.close()
            raise
        self._frames_in = 0
        self._offset: int | None = None

    def _add_video(self, copy_from: InputFile | None):
        info, s = self.info, self.settings
        if copy_from is not None:
            stream = self.container.add_stream_from_template(copy_from.video)
            stream.time_base = copy_from.video.time_base or info.time_base
        else:
            codec = "rawvideo" if s.codec == "y4m" else (s.codec or "libx265")
            if codec not in ("libx265", "libx264", "ffv1", "rawvideo"):
                raise MediaError(f"unknown codec {s.codec!r}; use one of {', '.join(ENCODERS)}")
            if self.format == "yuv4mpegpipe" and codec != "rawvideo":
                raise MediaError("a .y4m output needs --codec y4m")
            rate = info.rate or Fraction(25)
            options = {}
            if codec == "libx265":
                # repeat-headers: parameter sets in every keyframe so raw and TS outputs stay decodable
                params = ["log-level=error", "info=0", "repeat-headers=1"]
                if s.keyint:
                    params.append(f"keyint={s.keyint}")
                params += x265_hdr_params(info.color)
                options["x265-params"] = ":".join(params)
                options["preset"] = s.preset
            elif codec == "libx264":
                options["preset"] = s.preset
            elif codec == "ffv1":
                options.update({"level": "3", "slicecrc": "1"})
            if codec in ("libx265", "libx264"):
                if s.qp is not None:
                    options["qp"] = str(s.qp)
                else:
                    options["crf"] = str(18 if s.crf is None else s.crf)
            options.update(s.extra)
            stream = self.container.add_stream(codec, rate=rate, options=options)
            stream.width, stream.height = info.width, info.height
            stream.pix_fmt = pix_fmt_for(s.bit_depth or info.bit_depth)
            if info.time_base:
                stream.codec_context.time_base = info.time_base
                stream.time_base = info.time_base
            if s.keyint and codec != "libx265":
                stream.codec_context.gop_size = s.keyint
            _set_color(stream.codec_context, info.color)
            if self.format == "yuv4mpegpipe" and (s.bit_depth or info.bit_depth) > 8:
                self.container.options["strict"] = "-1"
        if info.language:
            stream.metadata["language"] = info.language
        return stream

    def _add_others(self, template: InputFile) -> None:
        for other in template.others:
            if other.kind not in ("audio", "subtitle"):
                continue
            src = template.container.streams[other.index]
            try:
                out = self.container.add_stream_from_template(src)
            except (ValueError, av.error.FFmpegError) as exc:
                raise MediaError(f"cannot carry {other.kind} codec {other.codec} in {self.format} ({exc})") from None
            out.time_base = src.time_base
            for key, value in src.metadata.items():
                if key.lower() in ("language", "title", "handler_name"):
                    out.metadata[key] = value
            out.disposition = src.disposition
            self._stream_map[other.index] = out

    def _add_data_track(self):
        if self.format not in ("mp4", "mov", "mpegts"):
            return None
        stream = self.container.add_data_stream("bin_data")
        stream.time_base = self.info.time_base or Fraction(1, 90000)
        return stream

    # -- writing
    def encode(self, frame: Frame) -> None:
        if self.format == "yuv4mpegpipe" or self.info.time_base is None:
            frame = frame.replace(pts=self._frames_in, time_base=self.video.codec_context.time_base)
        vf = frame_to_av(frame)
        self._frames_in += 1
        self._mux(self.video.encode(vf))

    def mux_video(self, packet, data: bytes | None = None, additional: bytes | None = None) -> None:
        """Copy a demuxed video packet, optionally with new bytes (e.g. an inserted SEI) and an MKV
        BlockAdditional (the ``track`` carriage in Matroska, which rejects data tracks)."""
        if data is not None or additional:
            new = av.Packet(data if data is not None else bytes(packet))
            new.pts, new.dts, new.time_base = packet.pts, packet.dts, packet.time_base
            new.duration = packet.duration
            new.is_keyframe = packet.is_keyframe
            if additional:
                blob = struct.pack(">Q", BLOCK_ADD_ID) + additional
                sd = PacketSideData(_BLOCK_ADDITIONAL, len(blob))
                sd.update(blob)
                new.set_sidedata(sd)
            packet = new
        self._dts_offset(packet)
        packet.stream = self.video
        self._mux([packet])

    def mux_data(self, data: bytes, video_packet) -> None:
        """A data-track packet timed like the video packet it describes (dts stays monotonic)."""
        if self.data_stream is None:
            raise MediaError(f"{self.format} cannot hold a data track")
        pkt = av.Packet(data)
        # MP4 drops data packets with negative time: shift by the first video dts (records carry the index)
        pkt.pts = pkt.dts = video_packet.dts + self._dts_offset(video_packet)
        pkt.time_base = video_packet.time_base
        pkt.stream = self.data_stream
        self._mux([pkt])

    def _dts_offset(self, video_packet) -> int:
        if self._offset is None:
            self._offset = max(0, -(video_packet.dts or 0))
        return self._offset

    def copy_packet(self, other: OtherPacket) -> None:
        out = self._stream_map.get(other.stream)
        if out is None:
            return
        packet = other.packet
        packet.stream = out
        self._mux([packet])

    def _mux(self, packets) -> None:
        try:
            for p in packets:
                self.container.mux(p)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{self.path}: mux failed ({exc.strerror or exc})") from None

    def close(self) -> None:
        try:
            if self.video.codec_context.is_encoder and self.video.codec_context.is_open:
                self._mux(self.video.encode(None))
        finally:
            self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass


def merge_by_time(a: Iterator, b: Iterator, key) -> Iterator:
    """Interleave two packet iterators by decode time so the muxer never buffers a whole stream."""
    return heapq.merge(a, b, key=key)


def pts_order(pts_list: list[int | None]) -> dict[int, int]:
    """Presentation index of each pts (packets arrive in decode order)."""
    return {pts: i for i, pts in enumerate(sorted(p for p in pts_list if p is not None))}


def versions() -> dict[str, str]:
    return {"av": av.__version__, "libavcodec": ".".join(map(str, av.library_versions["libavcodec"]))}
