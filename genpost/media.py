"""The only module that imports av: open, demux, decode, encode and mux, keeping pts and colour.

The pipeline sees plain ``Frame`` objects and opaque packet handles; it never touches av objects.
Names follow FFmpeg's verbs (demux, decode, encode, mux) as PyAV does.
"""

from __future__ import annotations

import heapq
import os
import struct
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.packet import PacketSideData, packet_sidedata_type_from_literal

from .damage import Concealer, DecodeDamage
from .limits import check_frame_size
from .types import (
    ColorInfo,
    ContentLight,
    Frame,
    MasteringDisplay,
    StreamInfo,
    dtype_for,
)


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


# ---------------------------------------------------------------- resource limits (genpost.limits)


def _check_y4m_header(path: str) -> None:
    """Read a y4m header before FFmpeg does, so a broken or absurd one gets a message that names it."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if not head.startswith(b"YUV4MPEG2"):
        if Path(path).suffix.lower() == ".y4m":
            raise MediaError(f"{path}: not a y4m file (no YUV4MPEG2 header)")
        return
    line, newline, _ = head.partition(b"\n")
    if not newline:
        raise MediaError(f"{path}: the y4m header line is not terminated")
    fields = {tok[:1]: tok[1:] for tok in line.split()[1:]}
    try:
        width, height = int(fields[b"W"]), int(fields[b"H"])
    except (KeyError, ValueError):
        raise MediaError(f"{path}: the y4m header has no valid W and H") from None
    check_frame_size(path, width, height)


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
    keyframes: list[int] = field(default_factory=list)  # indices of the frames the decoder marked key


@dataclass
class OtherPacket:
    packet: object  # opaque; hand it back to OutputFile.copy_packet
    stream: int


def _open_container(path: str | os.PathLike, mode: str = "r", fmt: str | None = None, options=None):
    try:
        if mode == "r":  # tags of a damaged file need not be UTF-8
            return av.open(str(path), mode, format=fmt, options=options or {}, metadata_errors="replace")
        return av.open(str(path), mode, format=fmt, options=options or {})
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except av.error.FFmpegError as exc:
        raise MediaError(f"{path}: cannot open ({exc.strerror or exc})") from None


def _demux(container, streams, max_skips: int = 100_000):
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


class InputFile:
    """A demuxer + video decoder that yields genpost Frames with their pts kept.

    Raw Annex-B streams carry no timing: give ``fps`` and frames get pts = index, time_base = 1/fps.
    """

    def __init__(
        self, path: str | os.PathLike, fps: Fraction | float | str | None = None, any_pix_fmt: bool = False
    ):
        """``any_pix_fmt``: open a video genpost cannot decode to Frames (e.g. 4:2:2) for its side info,
        streams and timing only, as the ffmpeg route does before its own decoder converts the pixels."""
        self.path = str(path)
        self.any_pix_fmt = any_pix_fmt
        if not os.path.isfile(self.path):
            raise MediaError(f"{path}: no such file")
        if os.path.getsize(self.path) == 0:
            raise MediaError(f"{path}: file is empty")
        self.raw_format = RAW_FORMATS.get(Path(self.path).suffix.lower())
        self.fps = Fraction(str(fps)) if fps is not None else None
        if self.fps is not None and self.fps <= 0:
            raise MediaError(f"--fps must be positive, got {fps}")
        self.max_errors: int | None = 0  # damaged frames demux accepts before raising; None: no limit
        self.damage = DecodeDamage()
        if not self.raw_format:
            _check_y4m_header(self.path)
        self.container = _open_container(self.path, fmt=self.raw_format)
        if not self.container.streams.video:
            self.close()
            raise MediaError(f"{path}: no video stream")
        self.video = self.container.streams.video[0]
        if self.video.codec_context is None:
            self.close()
            raise MediaError(f"{path}: unsupported video codec (FFmpeg has no decoder for it)")
        self.codec = self.video.codec_context.name
        try:
            if self.video.codec_context.width and self.video.codec_context.height:
                check_frame_size(self.path, self.video.codec_context.width, self.video.codec_context.height)
            self.info = self._probe()
        except BaseException:
            self.close()
            raise

    # -- probing
    def _probe(self) -> StreamInfo:
        first = error = None
        probe = _open_container(self.path, fmt=self.raw_format)
        try:
            decoder = probe.streams.video[0].codec_context
            for packet in _demux(probe, probe.streams.video[0]):  # the first picture that decodes
                try:
                    decoded = decoder.decode(packet if packet.size else None)
                except av.error.FFmpegError as exc:
                    error = error or exc
                    continue
                if decoded:
                    first = decoded[0]
                    break
        except av.error.FFmpegError as exc:
            error = error or exc
        finally:
            probe.close()
        if first is None:
            why = f" ({error.strerror or error})" if error is not None else ""
            raise MediaError(f"{self.path}: no decodable video frame{why}")
        check_frame_size(self.path, first.width, first.height)
        fmt = first.format.name
        if fmt not in SUPPORTED_PIX_FMTS and not self.any_pix_fmt:
            raise MediaError(f"{self.path}: unsupported pixel format {fmt} (genpost handles 8/10-bit 4:2:0)")
        depth = SUPPORTED_PIX_FMTS.get(fmt) or first.format.components[0].bits
        cc = self.video.codec_context
        rate = self.fps or self.video.average_rate or self.video.guessed_rate
        if self.raw_format:
            rate = self.fps
        time_base = Fraction(1, 1) / self.fps if self.raw_format and self.fps else self.video.time_base
        lang = self.video.metadata.get("language")
        return StreamInfo(
            width=first.width,
            height=first.height,
            bit_depth=depth,
            codec=self.codec,
            time_base=time_base,
            rate=Fraction(rate) if rate else None,
            frames=self.video.frames or None,
            color=_color_of(cc, first),
            pix_fmt=pix_fmt_for(depth) if fmt in SUPPORTED_PIX_FMTS else fmt,
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

    @property
    def tags(self) -> dict[str, str]:
        """Container metadata with lower-case keys (Matroska stores tag names upper-case), e.g. the
        ``genpost_postprocessors`` provenance tag."""
        return {k.lower(): v for k, v in self.container.metadata.items()}

    # -- demux and decode
    def _to_frame(self, vf, index: int) -> Frame:
        if (vf.width, vf.height) != (self.info.width, self.info.height):
            raise MediaError(
                f"{self.path}: the picture size changes from {self.info.width}x{self.info.height} to "
                f"{vf.width}x{vf.height} at frame {index}; genpost needs one size per stream"
            )
        if vf.pts is None or self.raw_format:
            if self.fps is None:
                return frame_from_av(vf, index, pts=None, time_base=None)
            return frame_from_av(vf, index, pts=index, time_base=self.info.time_base)
        return frame_from_av(vf, index, time_base=vf.time_base or self.video.time_base)

    def demux(self, copy_others: bool = True) -> Iterator[VideoUnit | OtherPacket]:
        """Packets in file order; video packets come with the frames their decode produced.

        Damage is counted in ``damage``: a picture the decoder loses is concealed (see genpost.damage) so
        frame count and timing survive, and more damaged frames than ``max_errors`` raise MediaError.
        """
        self._index, self._previous, self._span = 0, None, None
        conceal = Concealer(timed=not self.raw_format, step=self._ts_step())
        streams = [self.video] + ([s for s in self.container.streams if s.index in {o.index for o in self.others}] if copy_others else [])
        try:
            for packet in _demux(self.container, streams):
                if packet.stream.index != self.video.index:
                    if packet.dts is not None or packet.size:
                        yield OtherPacket(packet, packet.stream.index)
                    continue
                if not packet.size:
                    continue  # the demuxer's end marker; the decoder is drained below
                if not packet.is_discard:
                    conceal.sent_packet(packet.pts)
                self._check_packet(packet)
                data = bytes(packet)
                frames, keys = self._decode(packet, conceal)
                yield VideoUnit(data, frames, packet, keys)
        except av.error.FFmpegError as exc:  # a demuxer error: what was read is kept, the rest is lost
            self.damage.truncated = True
            self.damage.note(f"the file cannot be read past frame {self._index} ({exc.strerror or exc})")
        frames, keys = self._decode(None, conceal)
        tail, unplaced = conceal.finish()
        frames += [f for f in (self._conceal(pts, None) for pts in tail) if f is not None]
        if unplaced:
            self.damage.lost += unplaced
            self.damage.note(f"{unplaced} pictures could not be decoded")
        self._check_truncation()
        self._check_budget()
        if frames:
            yield VideoUnit(b"", frames, None, keys)

    def _ts_step(self) -> int | None:
        """The frame duration in pts ticks of a constant-rate MPEG-TS video (see Concealer.step)."""
        rate, tb = self.info.rate, self.video.time_base
        if self.container.format.name != "mpegts" or not rate or not tb:
            return None
        step = 1 / (rate * tb)
        return int(step) if step.denominator == 1 and step > 1 else None

    def _decode(self, packet, conceal: Concealer) -> tuple[list[Frame], list[int]]:
        """Decode one packet (None drains): its pictures, lost ones concealed, and which are key."""
        try:
            decoded = self.video.codec_context.decode(packet)
        except av.error.FFmpegError as exc:
            decoded = []
            self.damage.rejected_packets += 1
            where = f"the packet at {self._seconds(packet.pts)}" if packet is not None else "the stream's end"
            self.damage.note(f"the decoder rejected {where} ({exc.strerror or exc})")
        frames, keys = [], []
        for vf in decoded:
            lost, pts, keep = conceal.place(vf.pts)
            if conceal.leading and not frames and self._previous is None:
                self._skipped_leading(conceal.leading)
            frames += [f for f in (self._conceal(q, vf) for q in lost) if f is not None]
            if not keep:  # its slot is filled already (late, duplicate or damaged timestamp)
                self.damage.lost += 1
                self.damage.note(f"a picture with an out-of-order timestamp ({vf.pts}) was dropped")
                continue
            if vf.is_corrupt:
                self.damage.corrupt += 1
                self.damage.note(f"frame {self._index} was decoded with errors")
            frame = self._to_frame(vf, self._index)
            if vf.pts is None and pts is not None:
                frame = frame.replace(pts=pts, time_base=self.video.time_base)
            if vf.key_frame:
                keys.append(self._index)
            self._index += 1
            self._previous = frame
            frames.append(frame)
        self._check_budget()
        return frames, keys

    def _skipped_leading(self, n: int) -> None:
        """Pictures before the first decodable one: a stream cut at an open-GOP keyframe loses its leading
        pictures by design (FFmpeg skips them silently); after a decoder error they are damage."""
        if self.damage.rejected_packets:
            self.damage.lost += n
            self.damage.note(f"the first {n} pictures could not be decoded")
        else:
            self.damage.skipped_leading += n

    def _conceal(self, pts: int, upcoming) -> Frame | None:
        """The lost picture at ``pts``: the previous picture again (the next one, at the very start)."""
        base = self._previous
        if base is None and upcoming is not None:
            base = self._to_frame(upcoming, self._index)
        if base is None:
            self.damage.lost += 1
            return None
        frame = base.replace(y=base.y.copy(), u=base.u.copy(), v=base.v.copy(), index=self._index, pts=pts)
        self._index += 1
        self._previous = frame
        self.damage.concealed += 1
        self.damage.note(f"the picture at {self._seconds(pts)} could not be decoded (concealed)")
        return frame

    def _seconds(self, pts) -> str:
        if pts is None or not self.video.time_base or self.raw_format:
            return f"frame {self._index}"
        return f"{float(pts * self.video.time_base):.3f} s"

    def _check_packet(self, packet) -> None:
        """Note damage the container shows before decoding: a y4m frame cut short; track the time span."""
        if packet.pts is not None and packet.time_base:
            end = (packet.pts + (packet.duration or 0)) * packet.time_base
            start = packet.pts * packet.time_base
            lo, hi = self._span or (start, end)
            self._span = (min(lo, start), max(hi, end))
        if self.container.format.name == "yuv4mpegpipe":
            w, h, depth = self.info.width, self.info.height, self.info.bit_depth
            need = (w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)) * (2 if depth > 8 else 1)
            if packet.size != need:
                self.damage.note(f"frame {self._index} is cut short ({packet.size} of {need} bytes)")

    def _check_truncation(self) -> None:
        """A track that says it lasts longer than the packets the file holds was cut short."""
        expected = None  # when the track should end, on the packets' clock
        if self.video.duration and self.video.time_base:
            expected = (self.video.start_time or 0) * self.video.time_base + self.video.duration * self.video.time_base
        else:
            tag = self.video.metadata.get("DURATION") or self.video.metadata.get("duration")
            try:
                h, m, s = tag.split(":")
                expected = Fraction(int(h) * 3600 + int(m) * 60) + Fraction(s)
            except (AttributeError, ValueError):
                expected = None
        rate = self.info.rate
        if self.container.format.name == "yuv4mpegpipe":
            self._check_y4m_tail()
        if expected is None or not rate or self._span is None:
            return
        missing = expected - self._span[1]
        if missing > 2 / rate + Fraction(1, 1000):
            frames = max(1, round(missing * rate))
            self.damage.truncated = True
            self.damage.lost += frames
            self.damage.note(
                f"the file ends {float(missing):.3f} s (about {frames} frames) before its video track says it does"
            )

    def _check_y4m_tail(self) -> None:
        """FFmpeg's y4m demuxer drops a last frame cut short without a word: find it from the file size."""
        w, h, depth = self.info.width, self.info.height, self.info.bit_depth
        need = (w * h + 2 * ((w + 1) // 2) * ((h + 1) // 2)) * (2 if depth > 8 else 1)
        with open(self.path, "rb") as fh:
            header = fh.readline()
        rest = os.path.getsize(self.path) - len(header) - (self._index - self.damage.concealed) * (len(b"FRAME\n") + need)
        if 0 < rest < len(b"FRAME\n") + need:
            self.damage.lost += 1
            self.damage.truncated = True
            self.damage.note(f"the last frame is cut short ({max(0, rest - 6)} of {need} bytes)")

    def _check_budget(self) -> None:
        if self.max_errors is not None and self.damage.frames > self.max_errors:
            raise MediaError(
                f"{self.path}: {self.damage.first}; {self.damage.frames} damaged frames, --max-errors {self.max_errors}"
            )

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
            for packet in _demux(container, [video] + data_streams):
                if not packet.size:
                    continue
                if packet.stream.index != video.index:
                    yield "data", bytes(packet)
                    continue
                yield "packet", bytes(packet)
                extra = block_additional(packet)
                if extra:
                    yield "block_additional", extra
        except av.error.FFmpegError:
            return  # a damaged file: keep the side info read so far; decoding counts the damage
        finally:
            container.close()

    def packet_frames(self) -> list[tuple[bytes, int | None, bool]]:
        """(bytes, presentation-order frame index or None, key flag) of every video packet in decode order.

        Works for raw streams without timestamps too: a separate decoder sees each packet stamped with its
        decode position, and the order in which pictures come out gives their frame index (SEI such as
        NNPFA applies to its own access unit, whatever the reordering)."""
        container = _open_container(self.path, fmt=self.raw_format)
        video = container.streams.video[0]
        packets: list[tuple[bytes, int | None, bool]] = []
        order: dict[int, int] = {}
        try:
            ctx = av.CodecContext.create(video.codec_context.name, "r")
            if video.codec_context.extradata:
                ctx.extradata = video.codec_context.extradata

            def take(decoded) -> None:
                for vf in decoded:
                    if vf.pts is not None and vf.pts not in order:
                        order[vf.pts] = len(order)

            for packet in _demux(container, video):
                if not packet.size:
                    continue
                packets.append((bytes(packet), None, bool(packet.is_keyframe)))
                packet.pts = packet.dts = len(packets) - 1
                try:
                    take(ctx.decode(packet))
                except av.error.FFmpegError:
                    pass
            try:
                take(ctx.decode(None))
            except av.error.FFmpegError:
                pass
        except av.error.FFmpegError:
            pass  # a damaged file: what was read is kept
        finally:
            container.close()
        return [(data, order.get(i), key) for i, (data, _, key) in enumerate(packets)]

    def video_packets(self) -> Iterator[tuple[bytes, object]]:
        """(bytes, opaque packet) of every video packet, in decode order, without decoding."""
        for packet in _demux(self.container, self.video):
            if packet.size:
                yield bytes(packet), packet

    def packet_time(self, packet) -> float:
        ts = packet.dts if packet.dts is not None else packet.pts
        return float(ts * packet.time_base) if ts is not None and packet.time_base else 0.0

    def other_packets(self) -> Iterator[OtherPacket]:
        streams = [s for s in self.container.streams if s.index in {o.index for o in self.others}]
        if not streams:
            return
        for packet in _demux(self.container, streams):
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
        if metadata and self.format in ("mp4", "mov"):
            options["movflags"] = "+use_metadata_tags"  # keep the genpost_postprocessors tag (docs/ffmpeg.md)
        self.container = _open_container(self.path, "w", fmt=self.format, options=options)
        self._stream_map: dict[int, object] = {}
        self.dropped: list[str] = []  # input streams the output format cannot hold
        self.data_stream = None
        try:
            self.video = self._add_video(copy_from)
            if self.format in ("mp4", "mov") and self.video.codec_context.name in ("hevc", "libx265"):
                self.video.codec_tag = "hvc1"  # Apple players refuse FFmpeg's default hev1
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
        self.seconds = {"encode": 0.0, "mux": 0.0}  # time spent encoding and muxing (genpost bench)

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
            if self.format == "yuv4mpegpipe":  # y4m stores a frame rate, not timestamps
                stream.codec_context.time_base = 1 / Fraction(rate)
            elif info.time_base:
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
        if self.format in ("yuv4mpegpipe", "hevc", "vvc"):  # video-only formats: other streams are dropped
            self.dropped = [f"{o.kind} {o.codec}" for o in template.others if o.kind in ("audio", "subtitle")]
            return
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
        start = time.perf_counter()
        if self.format == "yuv4mpegpipe" or self.info.time_base is None:
            frame = frame.replace(pts=self._frames_in, time_base=self.video.codec_context.time_base)
        self._encode_av(frame_to_av(frame), start)

    def _encode_av(self, vf: av.VideoFrame | None, start: float | None = None) -> None:
        """Encode an av frame (None flushes) and mux its packets; the time goes to ``seconds``
        (``start``, when given, books the Frame-to-av copy as encoding too)."""
        start = time.perf_counter() if start is None else start
        if vf is not None:
            self._frames_in += 1
        packets = self.video.encode(vf)
        encoded = time.perf_counter()
        self._mux(packets)
        self.seconds["encode"] += encoded - start
        self.seconds["mux"] += time.perf_counter() - encoded

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
        # a data track whose only sample has no duration is dropped by FFmpeg 8.1's MP4 demuxer
        pkt.duration = video_packet.duration
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
                self._encode_av(None)
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
    libs = av.library_versions
    return {"av": av.__version__, **{name: ".".join(map(str, libs[name])) for name in ("libavcodec", "libavfilter")}}


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
                out._encode_av(vf)
                frames += 1
        except av.error.FFmpegError as exc:
            out.abort()
            raise MediaError(f"{path}: decode failed at frame {frames} ({exc.strerror or exc})") from None
        except BaseException:
            out.abort()
            raise
        out.close()
    return {"frames": frames, "decode": decode_s, **out.seconds}
