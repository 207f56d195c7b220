"""RecordIndex: one place where records from every carriage meet, de-duplicated and capped.

The same record can arrive more than once (an SEI seen through several carriages, a sidecar plus
in-band SEI); the first copy wins. A per-format byte cap bounds memory for hostile or runaway streams.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from .layout import MAX_STREAM_BYTES, Record


class RecordIndex:
    """Payloads keyed by (format_id, frame_index), with counters for what was rejected.

    A record covering a run of frames answers ``get`` for each of them; where runs overlap, the frame
    keeps the payload that arrived first."""

    def __init__(self, max_stream_bytes: int = MAX_STREAM_BYTES) -> None:
        self.max_stream_bytes = max_stream_bytes
        self._data: dict[str, dict[int, bytes]] = {}  # insertion order = order of first appearance
        self._runs: dict[str, dict[int, Record]] = {}  # the records themselves, by first frame
        self._bytes: dict[str, int] = {}
        self.malformed = 0
        self.duplicates = 0
        self.conflicts = 0
        self.over_cap = 0

    def add(self, records: Iterable[Record], bad: int = 0) -> int:
        """Add records (``bad`` = malformed count from the decoder that produced them); returns how many were new."""
        self.malformed += bad
        added = 0
        for r in records:
            frames = self._data.setdefault(r.format_id, {})
            runs = self._runs.setdefault(r.format_id, {})
            self._bytes.setdefault(r.format_id, 0)
            old = runs.get(r.frame_index)
            if old is not None or r.frame_index in frames:
                self.duplicates += 1
                self.conflicts += old is None or old.payload != r.payload or old.count != r.count
                continue
            if self._bytes[r.format_id] + len(r.payload) > self.max_stream_bytes:
                self.over_cap += 1
                continue
            payload = bytes(r.payload)
            for i in r.frames:
                frames.setdefault(i, payload)
            runs[r.frame_index] = r
            self._bytes[r.format_id] += len(payload)
            added += 1
        return added

    def get(self, format_id: str, frame_index: int) -> bytes | None:
        """The payload, or None when absent (never sent, malformed, or over the cap: all the same to a plugin)."""
        return self._data.get(format_id, {}).get(frame_index)

    def formats(self) -> list[str]:
        return list(self._data)

    def frames(self, format_id: str) -> set[int]:
        return set(self._data.get(format_id, ()))

    def records(self, format_id: str | None = None) -> Iterator[Record]:
        """Stored records (all formats, or one) in arrival order, e.g. to write a sidecar."""
        for fid in [format_id] if format_id is not None else self._runs:
            yield from self._runs.get(fid, {}).values()

    def stats(self) -> dict:
        return {
            "formats": {
                f: {"records": len(self._runs[f]), "frames": len(d), "bytes": self._bytes[f]}
                for f, d in self._data.items()
            },
            "malformed": self.malformed,
            "duplicates": self.duplicates,
            "conflicts": self.conflicts,
            "over_cap": self.over_cap,
        }

    def __len__(self) -> int:
        return sum(len(d) for d in self._runs.values())

    def __contains__(self, key: tuple[str, int]) -> bool:
        fid, idx = key
        return idx in self._data.get(fid, {})
