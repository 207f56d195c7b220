"""Side information on the wire: the record unit and its carriages (SEI NAL units, sidecar files).

This package is the only part of genpost that knows these bytes; it is pure Python (stdlib only) so it can
be imported, tested and fuzzed without av, numpy or torch. Byte layouts: docs/bitstream.md.
"""

from .chain import CHAIN_FORMAT, StreamChain, decode_chain, encode_chain, stream_chain
from .declare import DeclaredChain, PluginDeclaration, declaration_messages, parse_declaration
from .index import RecordIndex
from .layout import MAX_RECORD_PAYLOAD, MAX_RUN, MAX_STREAM_BYTES, Record
from .nal import (
    GENPOST_UUID,
    extract_records,
    insert_nal,
    prefix_sei_messages,
    records_from_sei_unregistered,
    records_message,
    sei_nal,
    sei_nal_messages,
    strip_records_nal,
)
from .nnpf import Nnpfa, Nnpfc, NnpfcProperties, NnpfMessages, nnpf_messages, read_nnpfa, read_nnpfc, write_nnpfa, write_nnpfc
from .record import base_format, decode_records, encode_records, record_overhead_bytes, update_format
from .sidecar import read_sidecar, write_sidecar

__all__ = [
    "CHAIN_FORMAT",
    "StreamChain",
    "decode_chain",
    "encode_chain",
    "stream_chain",
    "DeclaredChain",
    "PluginDeclaration",
    "declaration_messages",
    "parse_declaration",
    "prefix_sei_messages",
    "records_message",
    "sei_nal_messages",
    "Nnpfa",
    "Nnpfc",
    "NnpfcProperties",
    "NnpfMessages",
    "nnpf_messages",
    "read_nnpfa",
    "read_nnpfc",
    "write_nnpfa",
    "write_nnpfc",
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
