"""Sidecar carriage: a ``.gpsi`` file beside the video, for containers or workflows that drop SEI.

Layout (docs/bitstream.md)::

    b"GPSIDCAR" | version u8 (1) | one block per record
    block  = b"G\\xb2" | body_len varint | body | crc32 u32 BE (of magic, body_len and body)
    body   = n_formats u8 | n_formats x (id_len u8 | format_id) | records
    record = format u8 (index into the table) | frame_index varint | count varint | payload_len varint | payload

Varints are LEB128 (``layout.varint``). A block may hold any number of records (one CRC covers them); the
writer puts one record in each, so damage stays local, and no index table is needed: each block carries its
frame index and CRC, so a damaged file still yields its good records. Unlike the in-stream unit
(genpost.sideinfo.record), nothing in a file delimits a block: its magic and length are what let a reader
resynchronise after a damaged or cut block.

Versions: the header's version byte is the file's. A reader that meets another version (or no header) counts
one malformed item and still salvages the blocks it recognises: each is self-checking, so this cannot invent
data. A later layout takes a new version byte.
"""

from __future__ import annotations

import os
import zlib
from typing import BinaryIO, Iterable

from .layout import MAX_RECORD_PAYLOAD, MAX_RUN, MAX_UNIT, Record, check_record, read_varint, valid_format_id, varint

SIDECAR_MAGIC = b"GPSIDCAR"
SIDECAR_VERSION = 1
_HEADER = SIDECAR_MAGIC + bytes([SIDECAR_VERSION])
BLOCK_MAGIC = b"G\xb2"
RECORD_FIELDS = 5  # a block record's fields, budgeted: format index, frame index up to 2^14, count, length up to 127


def write_sidecar(fileobj: BinaryIO | str | os.PathLike, records: Iterable[Record]) -> int:
    """Write header + records to a binary file object (or a path); returns the bytes written.

    Records are encoded before anything is written, so a ValueError leaves the file untouched.
    """
    data = _HEADER + b"".join(encode_block([r]) for r in records)  # a block each: damage stays local
    if isinstance(fileobj, (str, os.PathLike)):
        with open(fileobj, "wb") as f:
            f.write(data)
    else:
        fileobj.write(data)
    return len(data)


def read_sidecar(data: bytes) -> tuple[list[Record], int]:
    """(records, malformed) from a sidecar's bytes; never raises on bad bytes.

    A missing header or one of another version counts as one malformed item, and the records are still
    salvaged: each block is self-checking, so this cannot invent data.
    """
    data = bytes(data) if isinstance(data, (bytearray, memoryview)) else data
    if data[: len(_HEADER)] == _HEADER:
        return scan_blocks(memoryview(data)[len(_HEADER) :])
    skip = len(_HEADER) if data[: len(SIDECAR_MAGIC)] == SIDECAR_MAGIC else 0
    records, bad = scan_blocks(memoryview(data)[skip:] if skip else data)
    return records, bad + 1


def record_overhead(format_id: str) -> int:
    """Bytes a record costs in a sidecar beyond its payload: a block of its own, fields budgeted (frame index
    up to 2^14, a payload up to 127 bytes, a body up to 16383 bytes)."""
    return RECORD_FIELDS + len(BLOCK_MAGIC) + 2 + 1 + 1 + len(format_id) + 4


def encode_block(records: list[Record]) -> bytes:
    """One block holding ``records`` (b"" for none); ValueError on anything a reader would reject."""
    if not records:
        return b""
    table: dict[bytes, int] = {}
    body = bytearray()
    for r in records:
        fid = check_record(r)
        index = table.setdefault(fid, len(table))
        if index > 255:
            raise ValueError("more than 256 formats in one block")
        body += bytes([index]) + varint(r.frame_index) + varint(r.count) + varint(len(r.payload)) + bytes(r.payload)
    head = bytes([len(table)]) + b"".join(bytes([len(f)]) + f for f in table)
    block = BLOCK_MAGIC + varint(len(head) + len(body)) + head + bytes(body)
    return block + zlib.crc32(block).to_bytes(4, "big")


def scan_blocks(buf: bytes | memoryview) -> tuple[list[Record], int]:
    """Parse concatenated blocks; returns (good records, malformed spots). Never raises on bytes-like input.

    A spot that is not a valid block counts once and the parser resynchronises at the next magic. Work is
    linear: the scan only moves forward and the bytes spent on failed CRC checks are budgeted, so hostile
    input (many nested fake headers) cannot make it quadratic.
    """
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"scan_blocks needs bytes-like input, got {type(buf).__name__}")  # caller bug
    raw = bytes(buf)  # no copy for bytes
    mv = memoryview(raw)
    records: list[Record] = []
    bad, pos, n = 0, 0, len(raw)
    budget = 8 * n  # damaged-but-honest files spend about n on failed CRCs; only forged nesting spends more
    while pos < n:
        recs, end, spent = parse_block(mv, pos) if raw.startswith(BLOCK_MAGIC, pos) else (None, pos, 0)
        budget -= spent
        if recs is not None:
            records += recs
            pos = end
            continue
        bad += 1
        pos = raw.find(BLOCK_MAGIC, pos + 1)
        if budget < 0 or pos < 0:
            break
    return records, bad


def parse_block(mv: memoryview, pos: int) -> tuple[list[Record] | None, int, int]:
    """(records or None, end offset, bytes CRC'd) for a block at ``pos``; never raises."""
    n = len(mv)
    try:
        size, p = read_varint(mv, pos + len(BLOCK_MAGIC), n)
    except ValueError:
        return None, pos, 0
    end = p + size
    if size > MAX_UNIT or end + 4 > n:
        return None, pos, 0
    if zlib.crc32(mv[pos:end]) != int.from_bytes(mv[end : end + 4], "big"):
        return None, pos, end - pos
    try:
        return _records(mv, p, end), end + 4, end - pos
    except ValueError:
        return None, pos, end - pos


def _records(mv: memoryview, p: int, end: int) -> list[Record]:
    if p >= end:
        raise ValueError("empty block")
    formats = []
    count, p = mv[p], p + 1
    for _ in range(count):
        length = mv[p] if p < end else 0
        fid = bytes(mv[p + 1 : p + 1 + length])
        if len(fid) != length or not valid_format_id(fid):
            raise ValueError("bad format id")
        formats.append(fid.decode("ascii"))
        p += 1 + length
    out = []
    while p < end:
        index, p = mv[p], p + 1
        frame, p = read_varint(mv, p, end)
        run, p = read_varint(mv, p, end)
        size, p = read_varint(mv, p, end)
        if index >= len(formats) or not 1 <= run <= MAX_RUN or frame >= 1 << 32 or size > MAX_RECORD_PAYLOAD or p + size > end:
            raise ValueError("bad record")
        out.append(Record(formats[index], frame, bytes(mv[p : p + size]), run))
        p += size
    return out
