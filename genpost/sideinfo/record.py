"""The side-information record: the one byte layout every carriage (SEI, sidecar, ...) wraps.

genpost writes version 3 (genpost.sideinfo.record3: one compact unit per carriage unit, which the carriage
delimits) and version 2 in sidecar files (genpost.sideinfo.record2: self-delimiting blocks with a magic), and
reads all three. Version-1 layout (see docs/bitstream.md)::

    b"GPSI" | version u8 | id_len u8 | format_id | frame_index u32 BE | count u16 BE | payload_len u32 BE
    | payload | crc32 u32 BE

Records are self-delimiting and self-checking, so any byte string can be scanned for them: a reader keeps
what passes the CRC and counts the rest as malformed instead of failing the whole frame or stream.
"""

from __future__ import annotations

import struct
import zlib
from typing import Iterable

from .layout import (
    MAGIC2,
    MAX_FORMAT_ID,
    MAX_RECORD_PAYLOAD,
    MAX_RUN,
    MAX_STREAM_BYTES,  # noqa: F401  (importable from here, as before)
    Record,
    valid_format_id,
)
from .record2 import block_overhead, encode_block, parse_block
from .record3 import encode_unit, is_unit, parse_unit, unit_overhead

MAGIC = b"GPSI"
VERSION = 1
RECORD2_OVERHEAD = 5  # a version-2 record's fields: format index, frame index up to 2^14, count, length up to 127

_HEAD = struct.Struct(">4sBB")  # magic, version, id_len
_TAIL = struct.Struct(">IHI")  # frame_index, count, payload_len
_CRC = struct.Struct(">I")
_MIN_RECORD = _HEAD.size + 1 + _TAIL.size + _CRC.size  # 21 bytes: 1-char id, empty payload


def encode_record(record: Record) -> bytes:
    """Serialise one record; ValueError on anything a reader would reject."""
    fid_str = record.format_id
    fid = fid_str.encode("ascii") if isinstance(fid_str, str) and fid_str.isascii() else b""
    if not valid_format_id(fid):
        raise ValueError(f"bad format_id {fid_str!r}: need 1..{MAX_FORMAT_ID} printable ASCII chars, no spaces")
    idx = record.frame_index
    if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < 1 << 32:
        raise ValueError(f"frame_index {idx!r} must be an int in 0..2**32-1")
    count = record.count
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RUN:
        raise ValueError(f"count {count!r} must be an int in 1..{MAX_RUN}")
    if not isinstance(record.payload, (bytes, bytearray, memoryview)):
        raise ValueError(f"payload must be bytes-like, got {type(record.payload).__name__}")
    payload = bytes(record.payload)
    if len(payload) > MAX_RECORD_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds MAX_RECORD_PAYLOAD ({MAX_RECORD_PAYLOAD})")
    body = b"".join((_HEAD.pack(MAGIC, VERSION, len(fid)), fid, _TAIL.pack(idx, count, len(payload)), payload))
    return body + _CRC.pack(zlib.crc32(body))


def encode_records_v1(records: Iterable[Record]) -> bytes:
    """Version-1 records, concatenated (what genpost wrote before v2; readers still take them)."""
    return b"".join(encode_record(r) for r in records)


def encode_records_v2(records: Iterable[Record]) -> bytes:
    """The records as one version-2 block (b"" for none): self-delimiting, what sidecar files hold."""
    return encode_block(list(records))


def encode_records(records: Iterable[Record]) -> bytes:
    """The records as one version-3 unit (b"" for none): what the in-stream carriages write, one unit per
    SEI message, data packet or BlockAdditional (docs/bitstream.md). The carriage must delimit it: a unit
    cannot be concatenated with anything else."""
    return encode_unit(list(records))


def _parse_one(mv: memoryview, pos: int) -> tuple[Record | None, int, int]:
    """Try a record at ``pos``: (record or None, end offset, bytes CRC'd)."""
    n = len(mv)
    if n - pos < _MIN_RECORD:
        return None, pos, 0
    magic, version, id_len = _HEAD.unpack_from(mv, pos)
    if magic != MAGIC or version != VERSION or not 1 <= id_len <= MAX_FORMAT_ID:
        return None, pos, 0
    p = pos + _HEAD.size
    if n - p < id_len + _TAIL.size + _CRC.size:
        return None, pos, 0
    fid = bytes(mv[p : p + id_len])
    frame_index, count, size = _TAIL.unpack_from(mv, p + id_len)
    p += id_len + _TAIL.size
    if size > MAX_RECORD_PAYLOAD or n - p < size + _CRC.size or not valid_format_id(fid) or count == 0:
        return None, pos, 0
    end = p + size
    (crc,) = _CRC.unpack_from(mv, end)
    if zlib.crc32(mv[pos:end]) != crc:
        return None, pos, end - pos
    return Record(fid.decode("ascii"), frame_index, bytes(mv[p:end]), count), end + _CRC.size, end - pos


def decode_records(buf: bytes | memoryview) -> tuple[list[Record], int]:
    """Records of one carriage unit (an SEI message's data after the UUID, a data packet, a BlockAdditional);
    returns (good records, number of malformed spots). Never raises on bytes-like input.

    A unit whose first byte marks version 3 (0x30..0x3F) is one version-3 unit: all its records, or none and
    one malformed spot when its CRC or any field fails. Anything else is scanned for version-1 records and
    version-2 blocks in any mix (``scan_records``), which is how streams written before version 3 read."""
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_records needs bytes-like input, got {type(buf).__name__}")  # caller bug
    if len(buf) and is_unit(buf[0]):
        got = parse_unit(buf)
        return ([], 1) if got is None else got
    return scan_records(buf)


def scan_records(buf: bytes | memoryview) -> tuple[list[Record], int]:
    """Parse concatenated version-1 records and version-2 blocks; returns (good records, malformed spots).

    Never raises on bytes-like input. A spot that is not a valid record counts once and the parser
    resynchronises at the next magic. Work is linear: the scan only moves forward and the bytes spent on
    failed CRC checks are budgeted, so hostile input (many nested fake headers) cannot make it quadratic.
    """
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise TypeError(f"scan_records needs bytes-like input, got {type(buf).__name__}")  # caller bug
    raw = bytes(buf)  # no copy for bytes
    mv = memoryview(raw)
    records: list[Record] = []
    bad, pos, n = 0, 0, len(raw)
    budget = 8 * n  # damaged-but-honest streams spend about n on failed CRCs; only forged nesting spends more
    nxt = [0, 0]  # where the next v1 / v2 magic is, once searched (-1: none left)
    while pos < n:
        if raw.startswith(MAGIC2, pos):
            recs, end, spent = parse_block(mv, pos)
        else:
            rec, end, spent = _parse_one(mv, pos)
            recs = [rec] if rec is not None else None
        budget -= spent
        if recs is not None:
            records += recs
            pos = end
            continue
        bad += 1
        if budget < 0:
            break
        for k, magic in enumerate((MAGIC, MAGIC2)):  # next candidate of each kind, searched once per pass
            if 0 <= nxt[k] <= pos:
                nxt[k] = raw.find(magic, pos + 1)
        pos = min((p for p in nxt if p >= 0), default=-1)
        if pos < 0:
            break
    return records, bad


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
    one plugin): its version-3 unit (header, format code or escaped id, frame index budgeted at 2 bytes:
    frames up to 16383, count budgeted at 1 byte: a run, CRC-16: units up to 256 bytes) and the carriage's
    framing: ``sei`` a whole prefix SEI NAL unit (``SEI_FRAMING``: length/start code, NAL header,
    payloadType, payloadSize, 16-byte UUID, trailing bits); ``nnpfc`` that plus the picture's 4-byte NNPFA
    message (a record is what activates a plugin without a default mode); ``track`` a data packet's muxing.
    ``sidecar``: the version-2 block a sidecar holds per record (fields budgeted alike, no framing). Plugins
    weigh this in their rate-distortion choice (``Context.record_overhead_bits``)."""
    if carriage == "sidecar":
        return RECORD2_OVERHEAD + block_overhead([format_id])
    return unit_overhead([format_id]) + CARRIAGE_FRAMING.get(carriage, 0)
