"""Record format version 3: one compact unit per carriage unit, the carriage delimits it (docs/bitstream.md).

A carriage unit (the payload of genpost's user_data_unregistered SEI message after its UUID, a data-track
packet, a BlockAdditional) is already identified and delimited by its carriage, so a version-3 unit has no
magic and no length::

    header u8 | record ... record | crc (u16 BE CRC-16 or u32 BE CRC-32, of header and records)
    header = 0x30 | crc32_flag     (high nibble 3: version 3; bits 1..3 reserved, zero)
    record = fmt u8 | [id_len u8 | format_id   when code = 0] | frame_index varint
             | [count varint   when R] | [payload_len varint   when M] | payload
    fmt    = M (bit 7: another record follows; this one carries payload_len)
             | R (bit 6: count present, else 1) | code (bits 0..5: FORMAT_CODES, 0 = the id follows)

The last record (M = 0) takes every byte up to the CRC as its payload. CRC-16 is CRC-16/CCITT-FALSE
(``binascii.crc_hqx`` from 0xFFFF) and is written and accepted only for units of at most ``CRC16_MAX``
bytes before the CRC; larger units take zlib's CRC-32. A lone ``wiener/1`` record for a frame below 128
costs 5 bytes beyond its payload (6 with a run), against 20 in version 2.

A header byte of 0x30..0x3F is how a reader tells a version-3 unit from version-1 records and version-2
blocks, which begin with ``G`` (0x47). The unit is stateless: nothing refers to another access unit.
"""

from __future__ import annotations

import binascii
import zlib

from .layout import MAX_RECORD_PAYLOAD, MAX_RUN, Record, valid_format_id
from .record2 import MAX_BLOCK, check_record, read_varint, varint

VERSION3 = 0x30
"""Header byte of a version-3 unit with CRC-16; ``| FLAG_CRC32`` for CRC-32. 0x30..0x3F mark version 3."""
FLAG_CRC32 = 0x01
_RESERVED = 0x0E
CRC16_MAX = 256
"""CRC-16 covers units of up to this many bytes (header and records); larger ones get CRC-32."""

MORE = 0x80
RUN = 0x40
CODE = 0x3F
ESCAPE = 0

FORMAT_CODES: dict[str, int] = {
    "wiener/1": 1,
    "wiener/1+update": 2,
    "gan-enhance/1": 3,
    "gan-enhance/1+update": 4,
    "rectified-flow/1": 5,
    "rectified-flow/1+update": 6,
    "residual-diffusion/1": 7,
    "residual-diffusion/1+update": 8,
    "syntax-diffusion/1": 9,
    "syntax-diffusion/1+update": 10,
    "genpost/chain": 11,  # genpost's own: the chain declaration (genpost.sideinfo.chain)
}
"""genpost's own formats, one byte each on the wire. Fixed: codes are only ever added, never changed or
reused. Any other format id is written in full after code 0."""
FORMATS: dict[int, str] = {code: fid for fid, code in FORMAT_CODES.items()}


def is_unit(first_byte: int) -> bool:
    """Whether a carriage unit opening with this byte is version 3 (v1 and v2 open with ``G``, 0x47)."""
    return first_byte >> 4 == VERSION3 >> 4


def _crc(data: bytes | memoryview, wide: bool) -> bytes:
    if wide:
        return zlib.crc32(data).to_bytes(4, "big")
    return binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")


def encode_unit(records: list[Record]) -> bytes:
    """One version-3 unit holding ``records`` (b"" for none); ValueError on anything a reader would reject."""
    if not records:
        return b""
    out = bytearray()
    last = len(records) - 1
    for k, r in enumerate(records):
        fid = check_record(r)
        code = FORMAT_CODES.get(r.format_id, ESCAPE)
        fmt = code | (MORE if k < last else 0) | (RUN if r.count != 1 else 0)
        out.append(fmt)
        if code == ESCAPE:
            out += bytes([len(fid)]) + fid
        out += varint(r.frame_index)
        if r.count != 1:
            out += varint(r.count)
        if k < last:
            out += varint(len(r.payload))
        out += bytes(r.payload)
    wide = len(out) + 1 > CRC16_MAX
    if len(out) + 5 > MAX_BLOCK:
        raise ValueError(f"records of {len(out)} bytes exceed one unit ({MAX_BLOCK} bytes)")
    unit = bytes([VERSION3 | (FLAG_CRC32 if wide else 0)]) + bytes(out)
    return unit + _crc(unit, wide)


def unit_overhead(format_ids: list[str], frame_bytes: int = 2, run_bytes: int = 1) -> int:
    """Bytes beyond the payloads of a unit holding one record per id, in order: the header, each record's
    fields (frame index and count varints budgeted at ``frame_bytes`` and ``run_bytes``; 2: frames up to
    16383; a payload_len of 1 byte, payloads up to 127 bytes, on all but the last) and a CRC-16."""
    fields = sum(1 + (0 if f in FORMAT_CODES else 1 + len(f)) + frame_bytes + run_bytes for f in format_ids)
    return 1 + fields + max(0, len(format_ids) - 1) + 2


def parse_unit(buf: bytes | memoryview) -> tuple[list[Record], int] | None:
    """(records, records skipped for a format code this reader does not know) of one whole version-3 unit,
    or None if it is damaged or invalid; never raises."""
    mv = memoryview(buf)
    n = len(mv)
    if n < 1 or not is_unit(mv[0]) or mv[0] & _RESERVED or n > MAX_BLOCK:
        return None
    wide = bool(mv[0] & FLAG_CRC32)
    end = n - (4 if wide else 2)
    if end < 2 or (not wide and end > CRC16_MAX):  # a record needs 2 bytes at least; CRC-16 only on small units
        return None
    if _crc(mv[:end], wide) != bytes(mv[end:]):
        return None
    try:
        return _records(mv, 1, end)
    except ValueError:
        return None


def _records(mv: memoryview, p: int, end: int) -> tuple[list[Record], int]:
    out = []
    skipped = 0
    more = True
    while more:
        if p >= end:
            raise ValueError("truncated record")
        fmt, p = mv[p], p + 1
        more, code = bool(fmt & MORE), fmt & CODE
        if code == ESCAPE:
            length = mv[p] if p < end else 0
            raw = bytes(mv[p + 1 : min(p + 1 + length, end)])
            if len(raw) != length or not valid_format_id(raw):
                raise ValueError("bad format id")
            fid: str | None = raw.decode("ascii")
            p += 1 + length
        else:
            fid = FORMATS.get(code)  # None: added to the registry after this reader; the record is skipped
        frame, p = read_varint(mv, p, end)
        run = 1
        if fmt & RUN:
            run, p = read_varint(mv, p, end)
        if more:
            size, p = read_varint(mv, p, end)
        else:
            size = end - p
        if not 1 <= run <= MAX_RUN or frame >= 1 << 32 or not 0 <= size <= MAX_RECORD_PAYLOAD or p + size > end:
            raise ValueError("bad record")
        if fid is None:
            skipped += 1
        else:
            out.append(Record(fid, frame, bytes(mv[p : p + size]), run))
        p += size
    return out, skipped
