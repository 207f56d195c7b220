"""Record format version 2: one block per carriage unit (an SEI message, a data packet, ...), holding any
number of compact records and one CRC-32 (docs/bitstream.md).

Layout::

    b"G\\xb2" | body_len varint | body | crc32 u32 BE (of magic, body_len and body)
    body  = n_formats u8 | n_formats x (id_len u8 | format_id) | records
    record = format u8 (index into the table) | frame_index varint | count varint | payload_len varint | payload

Varints are LEB128 (7 bits per byte, least significant group first). A record costs 4 bytes plus its
varints beyond one byte (5 for frame indices up to 16383), against 20 + len(format_id) in version 1: the
format id is written once per block and one CRC covers the block. Integrity is checked per block, so a
damaged block loses the records of its access unit only, which is the same unit a lost SEI would lose.
"""

from __future__ import annotations

import zlib

from .layout import MAGIC2, MAX_FORMAT_ID, MAX_RECORD_PAYLOAD, MAX_RUN, Record, valid_format_id

MAX_BLOCK = 64 << 20


def varint(value: int) -> bytes:
    """LEB128: 7 bits per byte, least significant group first (versions 2 and 3)."""
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


def encode_block(records: list[Record]) -> bytes:
    """One version-2 block holding ``records`` (b"" for none); ValueError on anything a reader would reject."""
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
    block = MAGIC2 + varint(len(head) + len(body)) + head + bytes(body)
    return block + zlib.crc32(block).to_bytes(4, "big")


def block_overhead(format_ids: list[str]) -> int:
    """Bytes of a block beyond its records for these formats (body length up to 16383 bytes)."""
    return len(MAGIC2) + 2 + 1 + sum(1 + len(f) for f in format_ids) + 4


def parse_block(mv: memoryview, pos: int) -> tuple[list[Record] | None, int, int]:
    """(records or None, end offset, bytes CRC'd) for a block at ``pos``; never raises."""
    n = len(mv)
    try:
        size, p = read_varint(mv, pos + len(MAGIC2), n)
    except ValueError:
        return None, pos, 0
    end = p + size
    if size > MAX_BLOCK or end + 4 > n:
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
