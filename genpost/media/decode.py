"""Demux and decode: ``InputFile`` yields genpost Frames with their pts kept, counts damage, and hands
out packets and side channels (SEI bytes, data tracks, BlockAdditional) for side info."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import av

from ..errors import MediaError, PipelineError
from ..types import Frame, StreamInfo
from . import container
from .colour import color_of, frame_from_av
from .container import OtherPacket, VideoUnit, block_additional, demux_packets, open_container
from .damage import Concealer, DecodeDamage
from .limits import check_frame_size


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
        self.raw_format = container.RAW_INPUTS.get(Path(self.path).suffix.lower())
        self.fps = Fraction(str(fps)) if fps is not None else None
        if self.fps is not None and self.fps <= 0:
            raise MediaError(f"--fps must be positive, got {fps}")
        self.max_errors: int | None = 0  # damaged frames demux accepts before raising; None: no limit
        self.damage = DecodeDamage()
        self._chroma_location = 0 if self.raw_format else container.check_y4m_header(self.path)
        self.container = open_container(self.path, fmt=self.raw_format)
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
        probe = open_container(self.path, fmt=self.raw_format)
        try:
            decoder = probe.streams.video[0].codec_context
            for packet in demux_packets(probe, probe.streams.video[0]):  # the first picture that decodes
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
        if fmt not in container.SUPPORTED_PIX_FMTS and not self.any_pix_fmt:
            raise MediaError(f"{self.path}: unsupported pixel format {fmt} (genpost handles 8/10-bit 4:2:0)")
        depth = container.SUPPORTED_PIX_FMTS.get(fmt) or first.format.components[0].bits
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
            color=color_of(cc, first),
            pix_fmt=container.pix_fmt_for(depth) if fmt in container.SUPPORTED_PIX_FMTS else fmt,
            language=lang,
            sample_aspect=_sample_aspect(self.video.sample_aspect_ratio),
            chroma_location=self._chroma_location,  # a y4m's C tag; coded streams: unspecified (left)
        )

    @property
    def others(self) -> list[container.OtherStream]:
        out = []
        for s in self.container.streams:
            if s.type in ("audio", "subtitle", "data", "attachment") and s is not self.video:
                if s.type == "attachment":
                    codec = s.mimetype or "unknown"  # (an attachment's name is its file name)
                else:  # data streams have no codec context: scte_35, klv, bin_data (genpost's track), ...
                    codec = s.codec_context.name if s.codec_context is not None else s.name or "unknown"
                out.append(container.OtherStream(s.index, s.type, codec, s.metadata.get("language")))
        return out

    @property
    def sei_codec(self) -> str | None:
        """'hevc' or 'vvc' when this stream can carry genpost SEI."""
        return container.SEI_CODECS.get(self.codec)

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

    def demux(self, copy_others: bool = True, stamp: bool = False) -> Iterator[VideoUnit | OtherPacket]:
        """Packets in file order; video packets come with the frames their decode produced.

        Damage is counted in ``damage``: a picture the decoder loses is concealed (see genpost.media.damage) so
        frame count and timing survive, and more damaged frames than ``max_errors`` raise MediaError.
        ``stamp``: a raw stream's video packets get the times its frames have (``raw_packet_times``), so
        they can be copied into a container; it costs one more decode of the stream.
        """
        times = self.raw_packet_times() if stamp and self.raw_format and self.fps else None
        self._index, self._previous, self._span, self._packets_seen = 0, None, None, 0
        conceal = Concealer(timed=not self.raw_format, step=self._ts_step())
        streams = [self.video] + ([s for s in self.container.streams if s.index in {o.index for o in self.others}] if copy_others else [])
        try:
            for packet in demux_packets(self.container, streams):
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
                if times is not None:
                    packet.pts, packet.dts = times[min(len(times) - 1, self._packets_seen)]
                    packet.time_base, packet.duration = self.info.time_base, 1
                    self._packets_seen += 1
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
        ("block_additional", MKV BlockAdditional bytes), ("data", packet bytes of a bin_data track)."""
        container = open_container(self.path, fmt=self.raw_format)
        video = container.streams.video[0]
        # genpost's data track is bin_data; SCTE-35, KLV or ID3 streams beside it are someone else's
        data_streams = [s for s in container.streams if s.type == "data" and s.name == "bin_data"]
        try:
            for packet in demux_packets(container, [video] + data_streams):
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

    def truncation(self) -> str | None:
        """Why the file looks cut short, or None: its packets (all streams) end well before the duration its
        header declares (Matroska, MP4), or demuxing stops at an error. MPEG-TS and raw streams declare no
        duration (FFmpeg estimates theirs from the file), so only a demux error says they were cut; a y4m
        frame cut short is decode damage (counted when decoding)."""
        container = open_container(self.path, fmt=self.raw_format)
        start = end = None
        packets = 0
        error = None
        try:
            for packet in demux_packets(container, list(container.streams)):
                if packet.pts is None or not packet.time_base:
                    continue
                packets += 1
                t0 = packet.pts * packet.time_base
                t1 = t0 + (packet.duration or 0) * packet.time_base
                start = t0 if start is None else min(start, t0)
                end = t1 if end is None else max(end, t1)
        except (av.error.FFmpegError, MediaError) as exc:
            error = getattr(exc, "strerror", None) or str(exc)
        finally:
            names = set(container.format.name.split(","))
            declared = container.duration / av.time_base if container.duration and names & {"matroska", "mov", "mp4"} else None
            container.close()
        covered = float(end - start) if start is not None and end is not None else 0.0
        if error is not None:
            return f"{self.path} looks truncated: demuxing stops at an error after {covered:.3f} s ({error})"
        rate = float(self.info.rate) if self.info.rate else 25.0
        if declared and declared - covered > max(0.1, 2 / rate, 0.01 * declared):
            return (
                f"{self.path} looks truncated: its packets cover {covered:.3f} s of the {declared:.3f} s its header "
                "declares (frames, duration and kbps are of what is there)"
            )
        return None

    def packet_frames(self) -> list[tuple[bytes, int | None, bool]]:
        """(bytes, presentation-order frame index or None, key flag) of every video packet in decode order.

        Works for raw streams without timestamps too: a separate decoder sees each packet stamped with its
        decode position, and the order in which pictures come out gives their frame index (SEI such as
        NNPFA applies to its own access unit, whatever the reordering)."""
        container = open_container(self.path, fmt=self.raw_format)
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

            for packet in demux_packets(container, video):
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

    def raw_packet_times(self) -> list[tuple[int, int]]:
        """(pts, dts) in frames for each video packet of a raw stream, in decode order: pts is the frame
        index its picture is shown at, dts its decode position less the stream's reorder delay, so that
        no dts is past its pts (as FFmpeg times a stream with B-frames)."""
        shown = [index for _, index, _ in self.packet_frames()]
        delay = max([n - i for n, i in enumerate(shown) if i is not None], default=0)
        return [(n if i is None else i, n - delay) for n, i in enumerate(shown)]

    def video_packets(self) -> Iterator[tuple[bytes, object]]:
        """(bytes, opaque packet) of every video packet, in decode order, without decoding."""
        for packet in demux_packets(self.container, self.video):
            if packet.size:
                yield bytes(packet), packet

    def video_pts(self) -> list[int]:
        """The pts of every video packet, in decode order (sorted, they give the frames' presentation order)."""
        return [packet.pts for _, packet in self.video_packets()]

    def packet_time(self, packet) -> float:
        ts = packet.dts if packet.dts is not None else packet.pts
        return float(ts * packet.time_base) if ts is not None and packet.time_base else 0.0

    def other_packets(self) -> Iterator[OtherPacket]:
        streams = [s for s in self.container.streams if s.index in {o.index for o in self.others}]
        if not streams:
            return
        for packet in demux_packets(self.container, streams):
            if packet.size:
                yield OtherPacket(packet, packet.stream.index)

    def close(self) -> None:
        self.container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def concat_packets(paths: Sequence[str | os.PathLike]) -> Iterator[tuple[float, bytes, object]]:
    """(dts seconds, bytes, opaque packet) of the video packets of ``paths`` in turn, like FFmpeg's concat demuxer
    joining segments that each had their own encoder. Such an encoder started afresh, so a segment's first
    packets may carry a dts at or before the previous segment's last one: that dts is moved one tick past
    it (a packet without dts gets its pts first); pts and time_base are kept. PipelineError (the job's
    own chunks cannot be joined) where a dts, moved or as read, is past its packet's pts (the muxer would
    refuse it)."""
    last: Fraction | None = None
    for path in paths:
        with InputFile(path) as seg:
            for data, packet in seg.video_packets():
                tb = packet.time_base
                if packet.dts is None:
                    packet.dts = packet.pts
                dts = packet.dts * tb
                if last is not None and dts <= last:
                    packet.dts = int(last / tb) + 1
                    dts = packet.dts * tb
                if packet.pts is not None and packet.pts < packet.dts:  # moved, or so in the chunk file
                    raise PipelineError(f"cannot join chunk {Path(path).name}: no room for its decode timestamps")
                last = dts
                yield float(dts), data, packet


def _sample_aspect(sar) -> Fraction | None:
    """A known pixel aspect ratio, or None (FFmpeg's 0:1 and a missing one mean unknown)."""
    return Fraction(sar) if sar and sar.numerator > 0 and sar.denominator > 0 else None
