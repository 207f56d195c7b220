"""The side-information record unit: the one byte layout the in-stream carriages wrap, one unit per carriage
unit (the payload of genpost's user_data_unregistered SEI message after its UUID, a data-track packet, a
BlockAdditional; docs/bitstream.md). Sidecar files hold the same records in self-delimiting blocks
(genpost.sideinfo.sidecar).

A carriage unit is already identified and delimited by its carriage, so a unit has no magic and no length::

    header u8 | record ... record | crc (u16 BE CRC-16 or u32 BE CRC-32, of header and records)
    header = VERSION << 4 | crc32_flag     (high nibble: the version, 3; bits 1..3 reserved, zero)
    record = fmt u8 | [id_len u8 | format_id   when code = 0] | frame_index varint
             | [count varint   when R] | [payload_len varint   when M] | payload
    fmt    = M (bit 7: another record follows; this one carries payload_len)
             | R (bit 6: count present, else 1) | code (bits 0..5: FORMAT_CODES, 0 = the id follows)

The last record (M = 0) takes every byte up to the CRC as its payload. CRC-16 is CRC-16/CCITT-FALSE
(``binascii.crc_hqx`` from 0xFFFF) and is written and accepted only for units of at most ``CRC16_MAX``
bytes before the CRC; larger units take zlib's CRC-32. A lone ``wiener/1`` record for a frame below 128
costs 5 bytes beyond its payload (6 with a run). The unit is stateless: nothing refers to another access unit.

Versions: the header's high nibble is the unit's version. Version 3 is the only one (1 and 2 were pre-release
layouts that no released genpost wrote, and are not read). A unit of any other version yields no records and
counts as one malformed unit, exactly like a damaged one, so its frames degrade to their base; a later layout
takes a new nibble and a reader that knows both chooses by it (``decode_records``). Within version 3 format
codes are only ever added: a record of a code this reader does not know is skipped and counted.
"""

from __future__ import annotations

import binascii
import zlib
from typing import Iterable

from .layout import MAX_RECORD_PAYLOAD, MAX_RUN, MAX_UNIT, Record, check_record, read_varint, valid_format_id, varint
from .sidecar import record_overhead as sidecar_overhead

VERSION = 3
"""The unit version this module writes and reads: the header's high nibble."""
HEADER = VERSION << 4
"""Header byte of a unit with CRC-16; ``| FLAG_CRC32`` for CRC-32."""
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


def unit_version(first_byte: int) -> int:
    """The version of a carriage unit opening with this byte (``VERSION`` for one this module reads)."""
    return first_byte >> 4


def _crc(data: bytes | memoryview, wide: bool) -> bytes:
    if wide:
        return zlib.crc32(data).to_bytes(4, "big")
    return binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")


def encode_records(records: Iterable[Record]) -> bytes:
    """The records as one unit (b"" for none): what the in-stream carriages write, one unit per SEI message,
    data packet or BlockAdditional. The carriage must delimit it: a unit cannot be concatenated with anything
    else. ValueError on anything a reader would reject."""
    records = list(records)
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
    if len(out) + 5 > MAX_UNIT:
        raise ValueError(f"records of {len(out)} bytes exceed one unit ({MAX_UNIT} bytes)")
    unit = bytes([HEADER | (FLAG_CRC32 if wide else 0)]) + bytes(out)
    return unit + _crc(unit, wide)


def decode_records(buf: bytes | memoryview) -> tuple[list[Record], int]:
    """Records of one carriage unit (an SEI message's data after the UUID, a data packet, a BlockAdditional);
    returns (good records, number of malformed spots). Never raises on bytes-like input.

    All the unit's records, or none and one malformed spot when its CRC or any field fails or its version is
    not ``VERSION``. Records of a format code this reader does not know are skipped and counted."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_records needs bytes-like input, got {type(buf).__name__}")  # caller bug
    if not len(buf):
        return [], 0
    got = parse_unit(buf)
    return ([], 1) if got is None else got


def unit_overhead(format_ids: list[str], frame_bytes: int = 2, run_bytes: int = 1) -> int:
    """Bytes beyond the payloads of a unit holding one record per id, in order: the header, each record's
    fields (frame index and count varints budgeted at ``frame_bytes`` and ``run_bytes``; 2: frames up to
    16383; a payload_len of 1 byte, payloads up to 127 bytes, on all but the last) and a CRC-16."""
    fields = sum(1 + (0 if f in FORMAT_CODES else 1 + len(f)) + frame_bytes + run_bytes for f in format_ids)
    return 1 + fields + max(0, len(format_ids) - 1) + 2


def parse_unit(buf: bytes | memoryview) -> tuple[list[Record], int] | None:
    """(records, records skipped for a format code this reader does not know) of one whole unit, or None if
    it is damaged, invalid or of another version; never raises."""
    mv = memoryview(buf)
    n = len(mv)
    if n < 1 or unit_version(mv[0]) != VERSION or mv[0] & _RESERVED or n > MAX_UNIT:
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


UPDATE_SUFFIX = "+update"


def update_format(format_id: str) -> str:
    """The format id of a plugin's content-adaptive weight updates: one record per period, covering it."""
    return format_id + UPDATE_SUFFIX


def base_format(format_id: str) -> str:
    """The plugin format an id belongs to (an update format's plugin format, else the id itself)."""
    return format_id[: -len(UPDATE_SUFFIX)] if format_id.endswith(UPDATE_SUFFIX) else format_id


SEI_FRAMING = 4 + 2 + 1 + 1 + 16 + 1
"""A prefix SEI NAL unit around genpost's unit: 4-byte length (or start code), NAL header, payloadType,
payloadSize (1 byte up to 254 bytes of message), the 16-byte UUID, rbsp_trailing_bits."""
CARRIAGE_FRAMING = {"sei": SEI_FRAMING, "nnpfc": SEI_FRAMING + 4, "track": 8}


def record_overhead_bytes(format_id: str, carriage: str) -> int:
    """Bytes a new record costs beyond its payload when it is alone in its access unit (the usual case for
    one plugin): its unit (header, format code or escaped id, frame index budgeted at 2 bytes: frames up to
    16383, count budgeted at 1 byte: a run, CRC-16: units up to 256 bytes) and the carriage's framing:
    ``sei`` a whole prefix SEI NAL unit (``SEI_FRAMING``: length/start code, NAL header, payloadType,
    payloadSize, 16-byte UUID, trailing bits); ``nnpfc`` that plus the picture's 4-byte NNPFA message (a
    record is what activates a plugin without a default mode); ``track`` a data packet's muxing.
    ``sidecar``: the block a sidecar holds per record (fields budgeted alike, no framing). Plugins weigh this
    in their rate-distortion choice (``Context.record_overhead_bits``)."""
    if carriage == "sidecar":
        return sidecar_overhead(format_id)
    return unit_overhead([format_id]) + CARRIAGE_FRAMING.get(carriage, 0)
