"""Sidecar carriage: a ``.gpsi`` file beside the video, for containers or workflows that drop SEI.

Layout: ``b"GPSIDCAR"`` | version u8 (=1) | one version-2 block per record (v1 records are read too). Each
block carries its frame index and CRC, so no index table is needed and a damaged file still yields its good
records. (A file holds every record of a stream: a block each costs bytes but keeps damage local.) Sidecars
keep version 2, not the in-stream version 3: nothing in a file delimits a unit, and the blocks' magic is
what lets a reader resynchronise after a damaged or cut block.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Iterable

from .record import Record, encode_records_v2, scan_records

SIDECAR_MAGIC = b"GPSIDCAR"
SIDECAR_VERSION = 1
_HEADER = SIDECAR_MAGIC + bytes([SIDECAR_VERSION])


def write_sidecar(fileobj: BinaryIO | str | os.PathLike, records: Iterable[Record]) -> int:
    """Write header + records to a binary file object (or a path); returns the bytes written.

    Records are encoded before anything is written, so a ValueError leaves the file untouched.
    """
    data = _HEADER + b"".join(encode_records_v2([r]) for r in records)  # a block each: damage stays local
    if isinstance(fileobj, (str, os.PathLike)):
        with open(fileobj, "wb") as f:
            f.write(data)
    else:
        fileobj.write(data)
    return len(data)


def read_sidecar(data: bytes) -> tuple[list[Record], int]:
    """(records, malformed) from a sidecar's bytes; never raises on bad bytes.

    A missing or unknown header counts as one malformed item, and the records are still salvaged: each one
    is self-checking, so this cannot invent data.
    """
    data = bytes(data) if isinstance(data, (bytearray, memoryview)) else data
    if data[: len(_HEADER)] == _HEADER:
        return scan_records(memoryview(data)[len(_HEADER) :])
    skip = len(_HEADER) if data[: len(SIDECAR_MAGIC)] == SIDECAR_MAGIC else 0
    records, bad = scan_records(memoryview(data)[skip:] if skip else data)
    return records, bad + 1
