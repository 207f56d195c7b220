"""Side information on the wire: the record format and its carriages (SEI NAL units, sidecar files).

This package is the only part of genpost that knows these bytes; it is pure Python (stdlib only) so it can
be imported, tested and fuzzed without av, numpy or torch. Byte layouts: docs/bitstream.md.
"""

from .index import RecordIndex
from .nal import (
    GENPOST_UUID,
    extract_records,
    insert_nal,
    records_from_sei_unregistered,
    sei_nal,
    strip_records_nal,
)
from .record import (
    MAX_RECORD_PAYLOAD,
    MAX_RUN,
    MAX_STREAM_BYTES,
    Record,
    base_format,
    decode_records,
    encode_records,
    record_overhead_bytes,
    update_format,
)
from .sidecar import read_sidecar, write_sidecar

__all__ = [
    "MAX_RUN",
    "record_overhead_bytes",
    "update_format",
    "base_format",
    "GENPOST_UUID",
    "MAX_RECORD_PAYLOAD",
    "MAX_STREAM_BYTES",
    "Record",
    "RecordIndex",
    "decode_records",
    "encode_records",
    "extract_records",
    "insert_nal",
    "read_sidecar",
    "records_from_sei_unregistered",
    "sei_nal",
    "strip_records_nal",
    "write_sidecar",
]
