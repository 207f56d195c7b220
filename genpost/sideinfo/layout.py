"""What the record versions share (genpost.sideinfo.record: version 1, record2: version 2, record3: version 3):
the Record itself, the caps a reader enforces, and the format-id rule."""

from __future__ import annotations

from dataclasses import dataclass

MAGIC2 = b"G\xb2"  # a version-2 block (genpost.sideinfo.record2)
MAX_RECORD_PAYLOAD = 1 << 20
"""Per-record payload cap: a reader never allocates more than this for one record."""
MAX_STREAM_BYTES = 256 << 20
"""Per-stream, per-format cap on payload bytes a reader keeps (enforced by RecordIndex)."""
MAX_FORMAT_ID = 64
MAX_RUN = 0xFFFF  # frames one record may cover


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
