"""Resource limits, checked before memory is committed: a clear error instead of an out-of-memory kill.

Plain Python (no av), so every reader (media's demuxers, the y4m pipe reader) can check a header with it.
"""

from __future__ import annotations

import os

from ..errors import GenpostError

DEFAULT_MAX_PIXELS = 8192 * 4320  # 8K UHD; a frame needs about 6 bytes per pixel per copy in flight
MAX_PIXELS_ENV = "GENPOST_MAX_PIXELS"


class FrameSizeError(GenpostError):
    """A frame is empty, negative or larger than the limit (exit code 3, like any unusable input)."""

    exit_code = 3


class LimitSettingError(FrameSizeError):
    """A limit set in the environment is not a valid value (exit code 2, bad usage)."""

    exit_code = 2


def max_pixels() -> int:
    """The largest frame (width * height) genpost opens; ``GENPOST_MAX_PIXELS`` changes it."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise LimitSettingError(f"{MAX_PIXELS_ENV} must be a positive number of pixels, got {raw!r}")
    return value


def check_frame_size(where, width: int, height: int) -> None:
    """Raise FrameSizeError naming ``where`` unless ``width`` x ``height`` is a usable frame size."""
    if width <= 0 or height <= 0:
        raise FrameSizeError(f"{where}: invalid frame size {width}x{height}")
    limit = max_pixels()
    if width * height > limit:
        raise FrameSizeError(
            f"{where}: frame size {width}x{height} is over the limit of {limit} pixels (set {MAX_PIXELS_ENV} to allow it)"
        )
