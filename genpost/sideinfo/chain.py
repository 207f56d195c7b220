"""The chain declaration record (format ``genpost/chain``): the post-processing chain, in order, carried as a
record in the record carriages (``sei``, ``track``, ``sidecar``) at every random-access point, so a stream
whose plugins chose their default mode (no record) still says what the encoder ran (docs/bitstream.md).

Payload, version 1 (integers unsigned, lengths u8)::

    version u8 (1) | n u8 (1..16 plugins) | n x plugin
    plugin = name_len (1..64) name | version_len (0..32) version | format | weights_tag 4 bytes
             | n_options u8 (0..32) | n_options x (key_len (1..64) key | value_len (0..255) value)
    format = code u8 (record.FORMAT_CODES; 0: id_len (0..64) then the id, 0 = no side info)

Names, versions, format ids and option keys are printable ASCII without spaces (versions may be empty);
option values are UTF-8. ``weights_tag`` is the first 4 bytes of the plugin's first weights sha256, zeros
when it has none. A payload is at most ``MAX_CHAIN_BYTES``; a reader takes a payload whole or not at all
and never raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .declare import TAG_BYTES, PluginDeclaration, weights_tag
from .layout import Record, valid_format_id
from .record import FORMAT_CODES, FORMATS

CHAIN_FORMAT = "genpost/chain"
"""The reserved format id of the chain declaration record (a code in record.FORMAT_CODES)."""
CHAIN_VERSION = 1
MAX_CHAIN_PLUGINS = 16
MAX_CHAIN_OPTIONS = 32
MAX_CHAIN_BYTES = 4096
MAX_VERSION = 32
MAX_VALUE = 255


def _ascii(text: str, what: str, empty: bool = False, limit: int = 64) -> bytes:
    raw = text.encode("ascii") if isinstance(text, str) and text.isascii() else b"\x00"
    if not (empty and not raw) and not (len(raw) <= limit and valid_format_id(raw)):
        raise ValueError(f"bad {what} {text!r}: need up to {limit} printable ASCII chars, no spaces")
    return bytes([len(raw)]) + raw


def encode_chain(plugins: Sequence[PluginDeclaration]) -> bytes:
    """The payload declaring ``plugins`` in order; ValueError on anything a reader would reject."""
    if not 1 <= len(plugins) <= MAX_CHAIN_PLUGINS:
        raise ValueError(f"a chain declares 1..{MAX_CHAIN_PLUGINS} plugins, not {len(plugins)}")
    out = bytearray([CHAIN_VERSION, len(plugins)])
    for d in plugins:
        out += _ascii(d.name, "plugin name")
        out += _ascii(d.version, "version", empty=True, limit=MAX_VERSION)
        code = FORMAT_CODES.get(d.side_info, 0)
        out += bytes([code]) if code else b"\x00" + _ascii(d.side_info, "side-info format", empty=True)
        out += d.weights_tag if len(d.weights_tag) == TAG_BYTES else weights_tag(d.sha256)
        if len(d.options) > MAX_CHAIN_OPTIONS:
            raise ValueError(f"{d.name}: more than {MAX_CHAIN_OPTIONS} options")
        out.append(len(d.options))
        for key, value in sorted(d.options.items()):
            raw = str(value).encode("utf-8")
            if len(raw) > MAX_VALUE:
                raise ValueError(f"{d.name}.{key}: a value of {len(raw)} bytes (at most {MAX_VALUE})")
            out += _ascii(key, "option key") + bytes([len(raw)]) + raw
    if len(out) > MAX_CHAIN_BYTES:
        raise ValueError(f"a chain declaration of {len(out)} bytes (at most {MAX_CHAIN_BYTES})")
    return bytes(out)


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("truncated")
        self.pos += n
        return self.buf[self.pos - n : self.pos]

    def u8(self) -> int:
        return self.take(1)[0]

    def text(self, empty: bool = False, limit: int = 64) -> str:
        raw = self.take(self.u8())
        if not (empty and not raw) and not (len(raw) <= limit and valid_format_id(raw)):
            raise ValueError("bad text")
        return raw.decode("ascii")


def decode_chain(payload: bytes | bytearray | memoryview) -> list[PluginDeclaration] | None:
    """The declared chain, or None when the payload is not a valid version-1 declaration; never raises."""
    if not isinstance(payload, (bytes, bytearray, memoryview)) or len(payload) > MAX_CHAIN_BYTES:
        return None
    rd = _Reader(bytes(payload))
    try:
        if rd.u8() != CHAIN_VERSION:
            return None
        n = rd.u8()
        if not 1 <= n <= MAX_CHAIN_PLUGINS:
            return None
        out = []
        for _ in range(n):
            name, version = rd.text(), rd.text(empty=True, limit=MAX_VERSION)
            code = rd.u8()
            fmt = rd.text(empty=True) if code == 0 else FORMATS.get(code)
            if fmt is None:  # a code registered after this reader: not a format it could run anyway
                fmt = f"?{code}"
            tag = rd.take(TAG_BYTES)
            k = rd.u8()
            if k > MAX_CHAIN_OPTIONS:
                return None
            options = {}
            for _ in range(k):
                key = rd.text()
                options[key] = rd.take(rd.u8()).decode("utf-8")
            out.append(PluginDeclaration(name, version, fmt, (), options, None, tag))
        if rd.pos != len(rd.buf):
            return None
        return out
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class StreamChain:
    """What a stream's chain declaration records say: the chain (the first valid copy; None: no valid one),
    how many copies were read, how many did not parse and how many valid ones said something else."""

    plugins: list[PluginDeclaration] | None = None
    copies: int = 0
    malformed: int = 0
    conflicts: int = 0
    _first: bytes = field(default=b"", repr=False)

    def add(self, payload: bytes) -> None:
        self.copies += 1
        found = decode_chain(payload)
        if found is None:
            self.malformed += 1
        elif self.plugins is None:
            self.plugins, self._first = found, bytes(payload)
        elif bytes(payload) != self._first:
            self.conflicts += 1

    def to_dict(self) -> dict:
        plugins = [
            {
                "name": d.name,
                "version": d.version,
                "format": d.side_info,
                "weights_tag": d.weights_tag.hex(),
                "options": dict(d.options),
            }
            for d in self.plugins or ()
        ]
        return {"plugins": plugins, "copies": self.copies, "malformed": self.malformed, "conflicts": self.conflicts}


def stream_chain(records: Iterable[Record]) -> StreamChain:
    """The chain declaration among ``records`` (those of format ``CHAIN_FORMAT``, in arrival order)."""
    out = StreamChain()
    for r in records:
        if r.format_id == CHAIN_FORMAT:
            out.add(r.payload)
    return out
