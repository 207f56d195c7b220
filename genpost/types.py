"""Plain data that flows between media, the pipeline and plugins (no av, no torch)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One decoded 4:2:0 picture as three planes in their native dtype.

    8-bit pictures hold ``uint8`` planes, 10/12-bit ones ``uint16`` (values are *not* scaled to 16 bits).
    ``index`` is the presentation-order frame number genpost assigns; side info is keyed by it because
    POC and pts do not survive every remux. ``pts``/``time_base`` are kept exactly as the demuxer gave them.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int = 8
    index: int = 0
    pts: int | None = None
    time_base: Fraction | None = None
    key_frame: bool = False  # a random-access point of the stream (IRAP): side-info periods start here

    @property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (self.y, self.u, self.v)

    @property
    def width(self) -> int:
        return self.y.shape[1]

    @property
    def height(self) -> int:
        return self.y.shape[0]

    @property
    def max_value(self) -> int:
        return (1 << self.bit_depth) - 1

    @property
    def dtype(self) -> np.dtype:
        return self.y.dtype

    def with_planes(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> "Frame":
        """A copy with new planes and the same bit depth, index and timing."""
        return dataclasses.replace(self, y=y, u=u, v=v)

    def replace(self, **changes) -> "Frame":
        return dataclasses.replace(self, **changes)


def dtype_for(bit_depth: int) -> np.dtype:
    return np.dtype(np.uint8 if bit_depth <= 8 else np.uint16)


@dataclass(frozen=True)
class MasteringDisplay:
    """SMPTE ST 2086 values in the units of the HEVC SEI (chromaticity /50000, luminance /10000 cd/m2)."""

    primaries: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]  # (R, G, B) each (x, y)
    white_point: tuple[int, int]
    max_luminance: int
    min_luminance: int


@dataclass(frozen=True)
class ContentLight:
    max_cll: int
    max_fall: int


@dataclass(frozen=True)
class ColorInfo:
    """Colour description as FFmpeg's enum numbers (1 = BT.709, 9 = BT.2020, 16 = PQ, ...)."""

    primaries: int = 2  # unspecified
    transfer: int = 2
    matrix: int = 2
    range: int = 0  # 0 unspecified, 1 limited (tv), 2 full (pc)
    mastering: MasteringDisplay | None = None
    content_light: ContentLight | None = None


@dataclass(frozen=True)
class StreamInfo:
    """What the pipeline and plugins know about the video stream."""

    width: int
    height: int
    bit_depth: int
    codec: str
    time_base: Fraction | None
    rate: Fraction | None
    frames: int | None = None
    color: ColorInfo = field(default_factory=ColorInfo)
    pix_fmt: str = "yuv420p"
    language: str | None = None
    sample_aspect: Fraction | None = None  # pixel aspect ratio (y4m's A, the VUI's SAR); None: unknown
    # 4:2:0 chroma siting as FFmpeg's AVChromaLocation: 0 unspecified (a coded stream's default: left),
    # 1 left (y4m C420mpeg2), 2 center (C420jpeg), 3 top-left (C420paldv)
    chroma_location: int = 0


def to_bit_depth(frame: Frame, bit_depth: int) -> Frame:
    """The one place genpost changes sample depth: up by left shift (as VTM/HM do), down with rounding."""
    shift = bit_depth - frame.bit_depth
    if shift == 0:
        return frame
    dtype = dtype_for(bit_depth)
    if shift > 0:
        planes = [p.astype(dtype) << shift for p in frame.planes]
    else:
        top = (1 << bit_depth) - 1
        planes = [np.minimum((p.astype(np.int32) + (1 << (-shift - 1))) >> -shift, top).astype(dtype) for p in frame.planes]
    return dataclasses.replace(frame, y=planes[0], u=planes[1], v=planes[2], bit_depth=bit_depth)
