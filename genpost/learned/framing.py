"""What a learned plugin's per-frame payload adds for content adaptation and "never worse per plane".

A plugin's own payload (version byte 1 first) may be wrapped in a two- or four-byte prefix::

    0  2 (the prefix's version; a plugin's own payloads start with 1)
    1  flags: bits 0..2 = planes Y, U, V restored (a plane whose bit is 0 stays as decoded);
       bit 3 = the period's content-adaptive update is in force
    2  with bit 3: the update's tag, u16 BE (crc32 of the update payload & 0xFFFF), so a frame whose
       update was lost or damaged is detected and falls back instead of running other weights
    .. the plugin's own payload

Unwrapped payloads (all planes, shipped weights) stay valid: the common case costs nothing extra.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable

import numpy as np

from ..postprocessor import Context, PayloadError
from ..types import Frame

PREFIX = 2
ALL_PLANES = 0b111


def update_tag(update: bytes) -> int:
    return zlib.crc32(update) & 0xFFFF


def wrap(body: bytes, planes: int = ALL_PLANES, tag: int | None = None) -> bytes:
    """``body`` with the prefix, or as is when every plane restores with the shipped weights."""
    if planes == ALL_PLANES and tag is None:
        return body
    if not 0 <= planes <= ALL_PLANES:
        raise ValueError("planes is a 3-bit mask")
    flags = planes | (8 if tag is not None else 0)
    return bytes([PREFIX, flags]) + (tag.to_bytes(2, "big") if tag is not None else b"")+ body


def unwrap(payload: bytes) -> tuple[bytes, int, int | None]:
    """(the plugin's own payload, plane mask, update tag or None); PayloadError for a bad prefix."""
    if payload[:1] != bytes([PREFIX]):
        return payload, ALL_PLANES, None
    if len(payload) < 2 or payload[1] >> 4:
        raise PayloadError("payload prefix has bad flags")
    flags = payload[1]
    if flags & 8:
        if len(payload) < 4:
            raise PayloadError("payload prefix is truncated")
        return payload[4:], flags & ALL_PLANES, int.from_bytes(payload[2:4], "big")
    return payload[2:], flags & ALL_PLANES, None


def prefix_bits(planes: int, tag: int | None) -> int:
    """Bits the prefix adds to a payload."""
    return 0 if planes == ALL_PLANES and tag is None else 16 + (16 if tag is not None else 0)


def decoder_context(ctx: Context, tag: int | None) -> Context:
    """The context to restore a frame with: the update in force when the payload names it (PayloadError when
    it was lost or damaged: the frame falls back and is counted), none when the payload was coded for
    the shipped weights."""
    if tag is None:
        return dataclasses.replace(ctx, update=None) if ctx.update is not None else ctx
    if ctx.update is None or update_tag(ctx.update) != tag:
        raise PayloadError("this frame's content-adaptive update was lost or damaged")
    return ctx


def keep_planes(out: Frame, decoded: Frame, planes: int) -> Frame:
    """``out`` with the planes not in the mask taken from ``decoded``."""
    if planes == ALL_PLANES:
        return out
    return out.with_planes(*(o if planes >> p & 1 else d for p, (o, d) in enumerate(zip(out.planes, decoded.planes))))


def plane_mask(restored: np.ndarray, decoded: np.ndarray) -> int:
    """The mask restoring a plane only where it lowers that plane's D ((3,) each; ties keep the decode)."""
    return sum(1 << p for p in range(3) if restored[p] < decoded[p])


def masked(restored: np.ndarray, decoded: np.ndarray, planes: int) -> np.ndarray:
    """Per-plane D (3,) of a frame restored in the masked planes only."""
    return np.array([restored[p] if planes >> p & 1 else decoded[p] for p in range(3)], np.float64)


def default_allowed(default: np.ndarray, decoded: np.ndarray, tag: int | None) -> bool:
    """Whether sending nothing (the default mode, per-plane D ``default``) may be a candidate: the default
    mode cannot leave a plane as decoded, so only where it loses on none; and never while an update is in
    force (``tag``), where every frame names the update so that a lost one is always detected."""
    return tag is None and bool((default <= decoded).all())


def reuse_candidates(
    ctx: Context, tag: int | None, decoded: np.ndarray, measure: Callable[[bytes], np.ndarray]
) -> list[tuple[np.ndarray, bytes]]:
    """[(per-plane D, payload)] for reusing the payload in force (``ctx.previous_payload``, free): only when it names
    the same update (``tag``) and, by ``measure`` (its per-plane D), loses on no plane; [] otherwise, and
    for a payload the plugin can no longer read (PayloadError). A plugin's candidate list starts here."""
    if not ctx.previous_payload:
        return []
    try:
        if unwrap(ctx.previous_payload)[2] == tag:
            d = measure(ctx.previous_payload)
            if (d <= decoded).all():
                return [(np.asarray(d, np.float64), ctx.previous_payload)]
    except PayloadError:
        pass
    return []
