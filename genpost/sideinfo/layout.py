"""What the record unit (genpost.sideinfo.record) and the sidecar block (genpost.sideinfo.sidecar) share: the
Record itself, the caps a reader enforces, the format-id rule, and the varints and field checks both write."""

from __future__ import annotations

from dataclasses import dataclass

MAX_RECORD_PAYLOAD = 1 << 20
"""Per-record payload cap: a reader never allocates more than this for one record."""
MAX_STREAM_BYTES = 256 << 20
"""Per-stream, per-format cap on payload bytes a reader keeps (enforced by RecordIndex)."""
MAX_FORMAT_ID = 64
MAX_RUN = 0xFFFF  # frames one record may cover
MAX_UNIT = 64 << 20
"""Bytes of one unit or sidecar block at most: a reader refuses a larger one before checking its CRC."""


@dataclass(frozen=True)
class Record:
    """One plugin's payload for a run of ``count`` frames starting at ``frame_index`` (genpost's
    presentation-order index). A run lets a payload that stays right (a filter, a strength) be sent once
    instead of once per frame, which matters when the carriage costs ~30 bytes per access unit."""

    format_id: str
    frame_index: int
    payload: bytes
    count: int = 1

    @property
    def frames(self) -> range:
        return range(self.frame_index, self.frame_index + self.count)


def valid_format_id(raw: bytes) -> bool:
    """Printable ASCII without spaces, 1..64 bytes: ids appear in logs and file names."""
    return 1 <= len(raw) <= MAX_FORMAT_ID and all(0x21 <= c <= 0x7E for c in raw)


def varint(value: int) -> bytes:
    """LEB128: 7 bits per byte, least significant group first."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(mv: memoryview, pos: int, end: int) -> tuple[int, int]:
    """(value, next offset) of the varint at ``pos``; ValueError past ``end`` or beyond 35 bits."""
    value = shift = 0
    while pos < end and shift <= 35:
        b = mv[pos]
        value |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return value, pos
        shift += 7
    raise ValueError("bad varint")


def check_record(r: Record) -> bytes:
    """The record's format id as bytes, after checking every field a reader would reject (ValueError)."""
    fid = r.format_id.encode("ascii") if isinstance(r.format_id, str) and r.format_id.isascii() else b""
    if not valid_format_id(fid):
        raise ValueError(f"bad format_id {r.format_id!r}: need 1..{MAX_FORMAT_ID} printable ASCII chars, no spaces")
    if isinstance(r.frame_index, bool) or not isinstance(r.frame_index, int) or not 0 <= r.frame_index < 1 << 32:
        raise ValueError(f"frame_index {r.frame_index!r} must be an int in 0..2**32-1")
    if isinstance(r.count, bool) or not isinstance(r.count, int) or not 1 <= r.count <= MAX_RUN:
        raise ValueError(f"count {r.count!r} must be an int in 1..{MAX_RUN}")
    if not isinstance(r.payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"payload must be bytes-like, got {type(r.payload).__name__}")
    if len(r.payload) > MAX_RECORD_PAYLOAD:
        raise ValueError(f"payload of {len(r.payload)} bytes exceeds MAX_RECORD_PAYLOAD ({MAX_RECORD_PAYLOAD})")
    return fid
