"""Encode and mux: ``OutputFile`` writes one video stream (encoded or copied packet for packet) with the
input's other streams copied untouched, and side info as new packet bytes, a data track or BlockAdditional."""

from __future__ import annotations

import math
import os
import struct
import time
from dataclasses import dataclass, field
from fractions import Fraction

import av
from av.packet import PacketSideData

from ..errors import MediaError
from ..types import Frame, StreamInfo, to_bit_depth
from .colour import frame_from_av, frame_to_av, set_color, x265_hdr_params
from .container import (
    BLOCK_ADD_ID,
    BLOCK_ADDITIONAL,
    ENCODERS,
    OtherPacket,
    open_container,
    output_format,
    pix_fmt_for,
)
from .decode import InputFile
from .y4m import PROVENANCE_FIELD, Y4MHeader, Y4MWriter

# ---------------------------------------------------------------- output

# container tags the muxer writes (or that describe the old file), and genpost's own provenance tag
_MUXER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "creation_time", "duration",
               "genpost_postprocessors"}  # fmt: skip
# stream tags that travel with a copied stream (DURATION and ENCODER are the muxer's to write)
_STREAM_TAGS = {"language", "title", "handler_name", "comment"}


def _stream_tags(stream) -> dict[str, str]:
    return {k: v for k, v in stream.metadata.items() if k.lower() in _STREAM_TAGS}


def _attachment_name(stream) -> str:
    return stream.metadata.get("filename") or stream.name or f"attachment{stream.index}"


def _video_only(template: InputFile, fmt: str) -> list[str]:
    lost = [f"{o.kind} {o.codec} dropped: {fmt} holds video only" for o in template.others if o.kind != "data" or o.codec != "bin_data"]
    chapters = len(template.container.chapters())
    return lost + ([f"{chapters} chapters dropped: {fmt} holds video only"] if chapters else [])



@dataclass
class EncoderSettings:
    codec: str | None = None  # libx265 (the default) | libx264 | ffv1 | y4m | copy
    bit_depth: int = 0  # 0: the input's
    qp: int | None = None
    crf: float | None = None
    preset: str = "medium"
    keyint: int | None = None
    extra: dict[str, str] = field(default_factory=dict)
    lossless: bool = False  # libx265/libx264: lossless (qp and crf ignored); enhance's default for restored frames


class OutputFile:
    """A muxer with one video stream (encoded or copied) and the input's other streams copied untouched.

    A ``.y4m`` output is written by genpost.media.y4m, as ``genpost pipe`` writes it, not by FFmpeg's muxer, which
    writes A0:0 whatever the stream's pixel aspect, guesses the chroma siting, has no X field for the
    ``genpost_postprocessors`` tag and, for copied packets (joined chunks), writes the time base as the rate.
    """

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
        self.dropped: list[str] = []  # what of the input the output format cannot hold, in words
        self.seconds = {"encode": 0.0, "mux": 0.0}  # time spent encoding and muxing (genpost bench)
        self._y4m: Y4MWriter | None = None
        if self.format == "yuv4mpegpipe":
            self._open_y4m(template, copy_from, metadata)
            return
        # keep the source's timestamps: no shifting of the first B-frame dts into pts
        options = {} if self.format in ("hevc", "vvc") else {"avoid_negative_ts": "disabled"}
        if metadata and self.format in ("mp4", "mov"):
            options["movflags"] = "+use_metadata_tags"  # keep the genpost_postprocessors tag (docs/ffmpeg.md)
        self.container = open_container(self.path, "w", fmt=self.format, options=options)
        self._stream_map: dict[int, object] = {}
        self.data_stream = None
        try:
            self.video = self._add_video(copy_from)
            if self.format in ("mp4", "mov") and self.video.codec_context.name in ("hevc", "libx265"):
                self.video.codec_tag = "hvc1"  # Apple players refuse FFmpeg's default hev1
            if template is not None:
                self._add_others(template)
                self._copy_chapters(template)
                self._copy_tags(template)
            if data_track:
                self.data_stream = self._add_data_track()
            for key, value in (metadata or {}).items():
                self.container.metadata[key] = value
        except Exception:
            self.container.close()
            raise
        self._frames_in = 0
        self._offset: int | None = None
        self._in_times: list[Fraction] = []  # the pts (seconds) of the frames given to the encoder, in order
        self._out_packets = 0  # packets the encoder has returned
        self._last_dts: Fraction | None = None  # seconds

    def _open_y4m(self, template: InputFile | None, copy_from: InputFile | None, metadata: dict[str, str] | None) -> None:
        codec = self.settings.codec
        if codec not in ("y4m", "copy") or (codec == "copy" and copy_from is not None and copy_from.codec != "rawvideo"):
            raise MediaError("a .y4m output needs --codec y4m")
        header = Y4MHeader.for_stream(self.info, self.settings.bit_depth or self.info.bit_depth)
        value = (metadata or {}).get("genpost_postprocessors")
        if value:
            header = header.with_extension(PROVENANCE_FIELD, value)
        if template is not None:  # video-only format: other streams are dropped
            self.dropped = _video_only(template, self.format)
        try:
            self._y4m = Y4MWriter(open(self.path, "wb"), header)
        except OSError as exc:
            raise MediaError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def _add_video(self, copy_from: InputFile | None):
        info, s = self.info, self.settings
        if copy_from is not None:
            try:
                stream = self.container.add_stream_from_template(copy_from.video)
            except (ValueError, av.error.FFmpegError) as exc:
                raise MediaError(f"cannot copy {copy_from.codec} video into {self.format} ({exc}); pick a --codec") from None
            stream.time_base = copy_from.video.time_base or info.time_base
        else:
            codec = "rawvideo" if s.codec == "y4m" else (s.codec or "libx265")
            if codec not in ("libx265", "libx264", "ffv1", "rawvideo"):
                raise MediaError(f"unknown codec {s.codec!r}; use one of {', '.join(ENCODERS)}")
            rate = info.rate or Fraction(25)
            options = {}
            if codec == "libx265":
                # repeat-headers: parameter sets in every keyframe so raw and TS outputs stay decodable
                params = ["log-level=error", "info=0", "repeat-headers=1"]
                if s.keyint:
                    params.append(f"keyint={s.keyint}")
                if s.lossless:
                    params.append("lossless=1")
                params += x265_hdr_params(info.color)
                options["x265-params"] = ":".join(params)
                options["preset"] = s.preset
            elif codec == "libx264":
                options["preset"] = s.preset
            elif codec == "ffv1":
                options.update({"level": "3", "slicecrc": "1"})
            if codec == "libx264" and s.lossless:
                options["qp"] = "0"  # x264's lossless mode
            elif codec == "libx265" and s.lossless:
                pass  # x265-params lossless=1
            elif codec in ("libx265", "libx264"):
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
            set_color(stream.codec_context, info.color)
            if info.sample_aspect:  # y4m's A field, the x265/x264 VUI's SAR, the container's aspect
                stream.codec_context.sample_aspect_ratio = info.sample_aspect
        if info.language:
            stream.metadata["language"] = info.language
        return stream

    def _add_others(self, template: InputFile) -> None:
        """Audio, subtitles, data streams (SCTE-35, KLV, ID3 in MPEG-TS) and attachments (fonts in MKV), with
        their language, title and disposition; what the output format cannot hold goes to ``dropped``.
        ``bin_data`` tracks are not copied: that is genpost's own side-info track (read, not carried on)."""
        if self.format in ("hevc", "vvc"):  # video-only formats: other streams are dropped
            self.dropped = _video_only(template, self.format)
            return
        self.video.metadata.update(_stream_tags(template.video))
        for other in template.others:
            src = template.container.streams[other.index]
            if other.kind == "attachment":
                if self.format != "matroska":
                    self.dropped.append(f"attachment {_attachment_name(src)} dropped: {self.format} holds no attachments")
                    continue
                out = self.container.add_attachment(_attachment_name(src), src.mimetype or "application/octet-stream", src.data)
                for key, value in src.metadata.items():
                    if key.lower() not in ("filename", "mimetype"):
                        out.metadata[key] = value
                continue
            if other.kind == "data":
                if other.codec == "bin_data":
                    continue  # genpost's side-info track (or FFmpeg's unknown private data)
                if self.format != "mpegts":
                    self.dropped.append(f"data {other.codec} dropped: {self.format} holds no data streams")
                    continue
            elif other.kind not in ("audio", "subtitle"):
                continue
            try:
                out = self.container.add_stream_from_template(src)
            except (ValueError, av.error.FFmpegError) as exc:
                raise MediaError(f"cannot carry {other.kind} codec {other.codec} in {self.format} ({exc})") from None
            out.time_base = src.time_base
            out.metadata.update(_stream_tags(src))
            out.disposition = src.disposition
            self._stream_map[other.index] = out

    def _copy_chapters(self, template: InputFile) -> None:
        chapters = template.container.chapters()
        if not chapters:
            return
        if self.format not in ("matroska", "mp4", "mov"):
            self.dropped.append(f"{len(chapters)} chapters dropped: {self.format} holds no chapters")
            return
        self.container.set_chapters(chapters)

    def _copy_tags(self, template: InputFile) -> None:
        """The input's container tags (title, comment, ...), less those its muxer wrote and genpost's
        provenance tag, which this output states for itself."""
        for key, value in template.container.metadata.items():
            if key.lower() not in _MUXER_TAGS:
                self.container.metadata[key] = value

    def _add_data_track(self):
        if self.format not in ("mp4", "mov", "mpegts"):
            return None
        stream = self.container.add_data_stream("bin_data")
        stream.time_base = self.info.time_base or Fraction(1, 90000)
        return stream

    # -- writing
    def encode(self, frame: Frame) -> None:
        start = time.perf_counter()
        if self._y4m is not None:
            self._y4m.write(to_bit_depth(frame, self._y4m.header.bit_depth))
            self.seconds["encode"] += time.perf_counter() - start
            return
        if self.info.time_base is None:
            frame = frame.replace(pts=self._frames_in, time_base=self.video.codec_context.time_base)
        self.encode_av(frame_to_av(frame), start)

    def encode_av(self, vf: av.VideoFrame | None, start: float | None = None) -> None:
        """Encode an av frame (None flushes) and mux its packets; the time goes to ``seconds``
        (``start``, when given, books the Frame-to-av copy as encoding too)."""
        start = time.perf_counter() if start is None else start
        if self._y4m is not None:
            if vf is not None:
                self.encode(frame_from_av(vf, self._y4m.frames_written))
            return
        if vf is not None:
            self._frames_in += 1
            if vf.pts is not None and vf.time_base:
                self._in_times.append(vf.pts * vf.time_base)
        packets = self.video.encode(vf)
        for packet in packets:
            self._encoder_dts(packet)
        encoded = time.perf_counter()
        self._mux(packets)
        self.seconds["encode"] += encoded - start
        self.seconds["mux"] += time.perf_counter() - encoded

    def mux_video(self, packet, data: bytes | None = None, additional: bytes | None = None) -> None:
        """Copy a demuxed video packet, optionally with new bytes (e.g. an inserted SEI) and an MKV
        BlockAdditional (the ``track`` carriage in Matroska, which rejects data tracks). A .y4m output takes
        raw video packets (the chunks of --resume and --workers), whose bytes are a y4m frame's."""
        if self._y4m is not None:
            self._write_y4m_packet(data if data is not None else bytes(packet))
            return
        if data is not None or additional:
            new = av.Packet(data if data is not None else bytes(packet))
            new.pts, new.dts, new.time_base = packet.pts, packet.dts, packet.time_base
            new.duration = packet.duration
            new.is_keyframe = packet.is_keyframe
            if additional:
                blob = struct.pack(">Q", BLOCK_ADD_ID) + additional
                sd = PacketSideData(BLOCK_ADDITIONAL, len(blob))
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
        # a data track whose only sample has no duration is dropped by FFmpeg 8.1's MP4 demuxer
        pkt.duration = video_packet.duration
        pkt.stream = self.data_stream
        self._mux([pkt])

    def _write_y4m_packet(self, data: bytes) -> None:
        writer = self._y4m
        assert writer is not None
        if len(data) != writer.header.frame_bytes:
            raise MediaError(f"{self.path}: a copied frame has {len(data)} bytes, a y4m frame {writer.header.frame_bytes}")
        writer.stream.write(b"FRAME\n")
        writer.stream.write(data)
        writer.frames_written += 1

    def _encoder_dts(self, packet) -> None:
        """Keep the encoder's dts where it can be one, else derive it. x265 sets the dts of a stream's first
        packets from its B-frame delay, which is never measured when fewer frames than that delay were given:
        a one-frame chunk then gets an uninitialised dts (hours before or after its pts), which the 33-bit
        MPEG-TS timestamps of a chunk file turn into a dts past its pts or a pts shifted by 2**33 ticks.
        Packet n (decode order) of a stream whose frames came in presentation order s_0, s_1, ... can have a
        dts no later than its pts and no earlier than s_n less the span the encoder has seen (its delay
        is at most that); outside that, or not after the previous dts, it gets the earliest valid value."""
        n, times = self._out_packets, self._in_times
        self._out_packets += 1
        tb = packet.time_base
        if packet.pts is None or not tb or len(times) != self._frames_in or n >= len(times):
            return  # frames without time (y4m) or an encoder that adds packets: left as they are
        pts = packet.pts * tb
        lowest = times[n] - (times[-1] - times[0])
        if self._last_dts is not None:
            lowest = max(lowest, self._last_dts + tb)
        dts = None if packet.dts is None else packet.dts * tb
        if dts is None or not lowest <= dts <= pts:
            if lowest > pts:
                raise MediaError(f"{self.path}: the encoder's packets cannot be given increasing decode times")
            packet.dts = math.ceil(lowest / tb)
            dts = packet.dts * tb
        self._last_dts = dts

    def _dts_offset(self, video_packet) -> int:
        if self._offset is None:
            self._offset = max(0, -(video_packet.dts or 0))
        return self._offset

    def copy_packet(self, other: OtherPacket) -> None:
        if self._y4m is not None:
            return  # video only
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
        if self._y4m is not None:
            self._y4m.stream.close()
            return
        try:
            if self.video.codec_context.is_encoder and self.video.codec_context.is_open:
                self.encode_av(None)
        finally:
            self.container.close()

    def abort(self) -> None:
        try:
            if self._y4m is not None:
                self._y4m.stream.close()
            else:
                self.container.close()
        except Exception:
            pass

    def __enter__(self) -> OutputFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        """Close (flush the encoder, write the trailer) when the block ends normally; abort on any exception,
        Ctrl-C included, so the error that ended the job is the one raised."""
        if exc_type is None:
            self.close()
        else:
            self.abort()
