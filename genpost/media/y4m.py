"""YUV4MPEG2 over file objects (pipes), one frame at a time, the stream header kept byte for byte.

``genpost pipe`` sits between two ffmpeg commands, so it must not reorder, re-time or re-describe what
the upstream ffmpeg wrote: the header's rate (F), aspect (A), interlacing (I), chroma siting (C) and
extension fields (X, e.g. XCOLORRANGE) pass through untouched, and memory stays at one frame whatever
the length. Pure stdlib + numpy (no av): a y4m frame is just three raw planes after ``FRAME\\n``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO

import numpy as np

from ..errors import MediaError
from ..types import ColorInfo, Frame, StreamInfo

MAGIC = b"YUV4MPEG2"
FFMPEG_MAX_HEADER = 128  # bytes with the newline: FFmpeg's yuv4mpegpipe demuxer fails on a longer header line
MAX_HEADER = 4096  # a header or FRAME line longer than this is not y4m
# 4:2:0 chroma tags genpost accepts, and the sample depth each one means
CHROMA_DEPTH = {"420jpeg": 8, "420paldv": 8, "420mpeg2": 8, "420": 8, "420p10": 10}
# the chroma siting an 8-bit tag says, as FFmpeg's AVChromaLocation (C420p10 says none), and back
CHROMA_LOCATION = {"420jpeg": 2, "420": 2, "420mpeg2": 1, "420paldv": 3}
_SITING_TAGS = {1: "C420mpeg2 XYSCSS=420MPEG2", 2: "C420jpeg XYSCSS=420JPEG", 3: "C420paldv XYSCSS=420PALDV"}
_RANGE = {"LIMITED": 1, "FULL": 2}
PROVENANCE_FIELD = "GENPOST_POSTPROCESSORS"  # X field carrying the pipeline.provenance value


class Y4MError(MediaError):
    """The y4m stream is malformed or in a format genpost does not handle; one line for the user."""


@dataclass(frozen=True)
class Y4MHeader:
    """The stream header: parsed fields for genpost, and the tokens as read for writing them back."""

    width: int
    height: int
    bit_depth: int
    rate: Fraction | None
    color_range: int  # FFmpeg's enum: 0 unspecified, 1 limited, 2 full
    tokens: tuple[str, ...]  # everything after the magic, in order, exactly as read

    @classmethod
    def parse(cls, line: bytes, name: str = "stream") -> Y4MHeader:
        if not line.startswith(MAGIC + b" ") or not line.endswith(b"\n"):
            raise Y4MError(f"{name}: not a y4m stream (no 'YUV4MPEG2' header); use ffmpeg's -f yuv4mpegpipe")
        try:
            tokens = tuple(line[len(MAGIC) + 1 : -1].decode("ascii").split())
        except UnicodeDecodeError:
            raise Y4MError(f"{name}: y4m header is not ASCII") from None
        width = height = 0
        rate = None
        chroma = "420jpeg"  # the y4m default
        color_range = 0
        try:
            for tok in tokens:
                key, val = tok[0], tok[1:]
                if key == "W":
                    width = int(val)
                elif key == "H":
                    height = int(val)
                elif key == "F":
                    num, den = (int(x) for x in val.split(":"))
                    rate = Fraction(num, den) if num > 0 and den > 0 else None
                elif key == "C":
                    chroma = val
                elif key == "X" and val.startswith("COLORRANGE="):
                    color_range = _RANGE.get(val.split("=", 1)[1], 0)
        except ValueError:
            raise Y4MError(f"{name}: bad y4m header field {tok!r}") from None
        if width <= 0 or height <= 0:
            raise Y4MError(f"{name}: y4m header has no valid W/H")
        if chroma not in CHROMA_DEPTH:
            raise Y4MError(
                f"{name}: y4m chroma C{chroma} is unsupported (genpost handles 4:2:0 8/10-bit); "
                "convert upstream with -pix_fmt yuv420p or yuv420p10le"
            )
        return cls(width, height, CHROMA_DEPTH[chroma], rate, color_range, tokens)

    @classmethod
    def for_stream(cls, info: StreamInfo, bit_depth: int | None = None) -> Y4MHeader:
        """A header describing ``info``: its frame rate, pixel aspect (A0:0 when unknown) and chroma siting
        (an unspecified one is a coded stream's default, left: C420mpeg2; C420p10 has no siting tag)."""
        depth = bit_depth or info.bit_depth
        rate = info.rate or Fraction(25)
        chroma = "C420p10 XYSCSS=420P10" if depth > 8 else _SITING_TAGS.get(info.chroma_location, _SITING_TAGS[1])
        sar = info.sample_aspect
        aspect = f"A{sar.numerator}:{sar.denominator}" if sar else "A0:0"
        tokens = [f"W{info.width}", f"H{info.height}", f"F{rate.numerator}:{rate.denominator}", "Ip", aspect]
        tokens += chroma.split()
        inv = {v: k for k, v in _RANGE.items()}
        if info.color.range in inv:
            tokens.append(f"XCOLORRANGE={inv[info.color.range]}")
        return cls.parse(MAGIC + b" " + " ".join(tokens).encode() + b"\n")

    @property
    def sample_aspect(self) -> Fraction | None:
        """The A field's pixel aspect ratio; None when unknown (A0:0 or none)."""
        for tok in self.tokens:
            if tok.startswith("A"):
                num, _, den = tok[1:].partition(":")
                if num.isdigit() and den.isdigit() and int(num) > 0 and int(den) > 0:
                    return Fraction(int(num), int(den))
        return None

    @property
    def chroma_location(self) -> int:
        """The C field's chroma siting as FFmpeg's AVChromaLocation (0: unspecified, as C420p10)."""
        chroma = next((t[1:] for t in self.tokens if t.startswith("C")), "420jpeg")  # the y4m default
        return CHROMA_LOCATION.get(chroma, 0)

    @property
    def frame_bytes(self) -> int:
        cw, ch = (self.width + 1) // 2, (self.height + 1) // 2
        return (self.width * self.height + 2 * cw * ch) * (2 if self.bit_depth > 8 else 1)

    def extension(self, key: str) -> str | None:
        """The value of an ``X<key>=<value>`` field, or None."""
        for tok in self.tokens:
            if tok.startswith(f"X{key}="):
                return tok.split("=", 1)[1]
        return None

    def with_extension(self, key: str, value: str) -> Y4MHeader:
        """This header with ``X<key>=<value>`` set (replaced in place, or appended)."""
        new = f"X{key}={value}"
        if any(ch.isspace() for ch in new):
            raise ValueError(f"y4m header fields cannot contain spaces: {new!r}")
        tokens = [new if t.startswith(f"X{key}=") else t for t in self.tokens]
        if new not in tokens:
            tokens.append(new)
        return replace(self, tokens=tuple(tokens))

    def with_bit_depth(self, bit_depth: int) -> Y4MHeader:
        """This header re-described for ``bit_depth`` samples (C and XYSCSS rewritten, the rest kept)."""
        if bit_depth == self.bit_depth:
            return self
        chroma, yscss = ("420p10", "420P10") if bit_depth > 8 else ("420mpeg2", "420MPEG2")
        tokens = []
        for tok in self.tokens:
            if tok.startswith("C"):
                tok = f"C{chroma}"
            elif tok.startswith("XYSCSS="):
                tok = f"XYSCSS={yscss}"
            tokens.append(tok)
        if not any(t.startswith("C") for t in tokens):
            tokens.append(f"C{chroma}")
        return replace(self, bit_depth=bit_depth, tokens=tuple(tokens))

    def to_bytes(self) -> bytes:
        """The header line. FFmpeg's y4m demuxer refuses a header over ``FFMPEG_MAX_HEADER`` bytes, so optional X
        fields go, least needed first (``XYSCSS``, which the C tag repeats; then genpost's provenance), until
        it fits; the stream's geometry, rate, aspect, chroma and range always stay."""
        tokens = list(self.tokens)
        for optional in ("XYSCSS=", f"X{PROVENANCE_FIELD}="):
            if len(_line(tokens)) <= FFMPEG_MAX_HEADER:
                break
            tokens = [t for t in tokens if not t.startswith(optional)]
        return _line(tokens)

    def stream_info(self, codec: str = "rawvideo", color: ColorInfo | None = None) -> StreamInfo:
        color = replace(color or ColorInfo(), range=self.color_range or (color.range if color else 0))
        return StreamInfo(
            width=self.width,
            height=self.height,
            bit_depth=self.bit_depth,
            codec=codec,
            time_base=1 / self.rate if self.rate else None,
            rate=self.rate,
            color=color,
            pix_fmt="yuv420p" if self.bit_depth <= 8 else "yuv420p10le",
            sample_aspect=self.sample_aspect,
            chroma_location=self.chroma_location,
        )


def _line(tokens: list[str]) -> bytes:
    return MAGIC + b" " + " ".join(tokens).encode("ascii") + b"\n"


def _plane_shapes(width: int, height: int) -> list[tuple[int, int]]:
    return [(height, width), ((height + 1) // 2, (width + 1) // 2), ((height + 1) // 2, (width + 1) // 2)]


class Y4MReader:
    """Frames from a y4m byte stream, read one at a time (index = position, pts = index in 1/rate)."""

    def __init__(self, stream: BinaryIO, name: str = "stdin"):
        self.stream = stream
        self.name = name
        line = stream.readline(MAX_HEADER)
        if not line:
            raise Y4MError(f"{name}: empty input (no y4m header)")
        self.header = Y4MHeader.parse(line, name)
        self.frames_read = 0

    def __iter__(self) -> Iterator[Frame]:
        h = self.header
        dtype = np.dtype("<u2") if h.bit_depth > 8 else np.dtype(np.uint8)
        shapes = _plane_shapes(h.width, h.height)
        time_base = 1 / h.rate if h.rate else None
        while True:
            line = self.stream.readline(MAX_HEADER)
            if not line:
                return
            if not line.startswith(b"FRAME"):
                raise Y4MError(f"{self.name}: frame {self.frames_read}: expected 'FRAME', got {line[:16]!r}")
            buf = bytearray(h.frame_bytes)
            got = _read_into(self.stream, buf)
            if got != len(buf):
                raise Y4MError(f"{self.name}: frame {self.frames_read} truncated ({got} of {len(buf)} bytes)")
            planes, offset = [], 0
            for shape in shapes:
                n = shape[0] * shape[1]
                arr = np.frombuffer(buf, dtype=dtype, count=n, offset=offset).reshape(shape)
                planes.append(arr.astype(np.uint16, copy=False) if h.bit_depth > 8 else arr)  # native order
                offset += n * dtype.itemsize
            index = self.frames_read
            self.frames_read += 1
            yield Frame(*planes, bit_depth=h.bit_depth, index=index, pts=index, time_base=time_base)


def _read_into(stream: BinaryIO, buf: bytearray) -> int:
    """Fill ``buf`` from a pipe that may hand out fewer bytes per read; returns the bytes got."""
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


class Y4MWriter:
    """Writes a header (at construction) and then frames that must match it in size and bit depth."""

    def __init__(self, stream: BinaryIO, header: Y4MHeader):
        self.stream = stream
        self.header = header
        self.frames_written = 0
        self._shapes = _plane_shapes(header.width, header.height)
        stream.write(header.to_bytes())

    def write(self, frame: Frame) -> None:
        h = self.header
        if frame.bit_depth != h.bit_depth or [p.shape for p in frame.planes] != self._shapes:
            raise Y4MError(
                f"frame {frame.index} is {frame.width}x{frame.height} {frame.bit_depth}-bit; "
                f"the y4m stream is {h.width}x{h.height} {h.bit_depth}-bit"
            )
        dtype = np.dtype("<u2") if h.bit_depth > 8 else np.dtype(np.uint8)
        self.stream.write(b"FRAME\n")
        for plane in frame.planes:
            self.stream.write(np.ascontiguousarray(plane, dtype=dtype).data)
        self.frames_written += 1

    def flush(self) -> None:
        self.stream.flush()
