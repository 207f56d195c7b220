"""Carry records in HEVC / VVC prefix SEI NAL units (user_data_unregistered, payloadType 5).

PyAV cannot attach SEI to frames before encoding, so genpost writes the NAL unit itself and splices it
into each encoded packet (access unit) before the first VCL NAL unit. Decoders (FFmpeg ``hevc``/``vvc``)
hand the payload back as frame side data ``SEI_UNREGISTERED`` on the right picture (raw .266 input needs
``aud=True``, see docs/bitstream.md); ``extract_records`` reads it straight from packets instead. Packets
come as Annex-B (raw .265/.266, MPEG-TS, encoder output) or with 4-byte big-endian NAL lengths (MP4/MKV);
both are handled, and the packet's own framing is kept.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator, NamedTuple

from .record import Record, decode_records, encode_records

GENPOST_UUID = bytes.fromhex("f31a7d10fea140da937ceb710a97c6b3")
"""uuid_iso_iec_11578 of genpost's user_data_unregistered SEI (UUID f31a7d10-fea1-40da-937c-eb710a97c6b3)."""

SEI_USER_DATA_UNREGISTERED = 5
_START_CODE = b"\x00\x00\x00\x01"


class _Nal(NamedTuple):
    start: int  # first byte of the framing (leading zeros + start code, or length field)
    body: int  # first byte of the NAL unit header
    end: int  # one past the NAL unit (Annex-B: trailing zeros included, they are harmless)


class _Codec(NamedTuple):
    header: bytes  # 2-byte NAL header of a prefix SEI (layer 0, temporal id 0)
    sei_type: int  # prefix SEI nal_unit_type
    last_vcl: int  # VCL types are 0..last_vcl
    ph_type: int  # VVC picture header (must stay after our SEI's position); -1 for HEVC

    def nal_type(self, data: bytes, u: _Nal) -> int:
        """nal_unit_type of NAL ``u`` in ``data``, or -1 for one too short to have a header."""
        if u.end - u.body < 2:
            return -1
        return (data[u.body] >> 1) & 0x3F if self.ph_type < 0 else (data[u.body + 1] >> 3) & 0x1F


_CODECS = {
    "hevc": _Codec(bytes([39 << 1, 0x01]), 39, 31, -1),
    "vvc": _Codec(bytes([0x00, (23 << 3) | 0x01]), 23, 11, 19),
}
_ALIASES = {"h265": "hevc", "hvc1": "hevc", "hev1": "hevc", "h266": "vvc", "vvc1": "vvc", "vvi1": "vvc"}


def _codec(name: str) -> _Codec:
    key = str(name).lower()
    try:
        return _CODECS[_ALIASES.get(key, key)]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}: expected 'hevc' or 'vvc'") from None


# --- emulation prevention -------------------------------------------------------------------------


_NEEDS_EPB = re.compile(rb"\x00\x00(?=[\x00-\x03])")
_EPB = re.compile(rb"\x00\x00\x03")


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """RBSP -> NAL payload: 00 00 0x (x <= 3) becomes 00 00 03 0x so no start code can appear inside.

    Matches do not overlap and the scan restarts after each 00 00, exactly as the spec's byte-wise rule.
    """
    return _NEEDS_EPB.sub(b"\x00\x00\x03", bytes(rbsp))


def remove_emulation_prevention(data: bytes) -> bytes:
    """NAL payload -> RBSP: drop the 03 of every 00 00 03."""
    return _EPB.sub(b"\x00\x00", bytes(data))


# --- SEI messages -----------------------------------------------------------------------------------


def _ff_coded(value: int) -> bytes:
    """payloadType / payloadSize coding: a run of 0xFF bytes then the remainder."""
    return b"\xff" * (value // 255) + bytes([value % 255])


def _sei_nal_from_messages(codec: _Codec, messages: Iterable[tuple[int, bytes]]) -> bytes:
    rbsp = b"".join(_ff_coded(t) + _ff_coded(len(p)) + p for t, p in messages) + b"\x80"
    return codec.header + add_emulation_prevention(rbsp)


def sei_nal_messages(codec: str, messages: Iterable[tuple[int, bytes]]) -> bytes:
    """A prefix SEI NAL unit (no start code / length) holding ``(payloadType, payload)`` messages in order."""
    return _sei_nal_from_messages(_codec(codec), messages)


def records_message(records: Iterable[Record]) -> tuple[int, bytes]:
    """genpost's user_data_unregistered message (payloadType, payload) carrying ``records``."""
    return SEI_USER_DATA_UNREGISTERED, GENPOST_UUID + encode_records(records)


def sei_nal(codec: str, records: Iterable[Record]) -> bytes:
    """A complete prefix SEI NAL unit (no start code / length) carrying ``records``."""
    return _sei_nal_from_messages(_codec(codec), [records_message(records)])


def _sei_messages(rbsp: bytes) -> Iterator[tuple[int, bytes, bool]]:
    """(payloadType, payload, truncated) for each message of an SEI RBSP; stops at trailing bits."""
    i, n = 0, len(rbsp)
    trailing = len(rbsp.rstrip(b"\x00")) - 1  # where rbsp_trailing_bits (0x80) should be
    while i < n:
        if i == trailing and rbsp[i] == 0x80:
            return
        values = []
        for _ in range(2):  # payloadType, payloadSize
            v = 0
            while i < n and rbsp[i] == 0xFF:
                v += 255
                i += 1
            if i >= n:
                return
            values.append(v + rbsp[i])
            i += 1
        ptype, size = values
        yield ptype, rbsp[i : i + size], i + size > n
        i += size


def _is_ours(ptype: int, payload: bytes) -> bool:
    return ptype == SEI_USER_DATA_UNREGISTERED and payload[:16] == GENPOST_UUID


def records_from_sei_unregistered(buf: bytes) -> tuple[list[Record], int]:
    """Records from FFmpeg ``SEI_UNREGISTERED`` side data (UUID + payload); ([], 0) if not genpost's."""
    buf = bytes(buf)
    if len(buf) < 16 or buf[:16] != GENPOST_UUID:
        return [], 0
    return decode_records(buf[16:])


# --- packet framing -----------------------------------------------------------------------------------


def _length_chain(data: bytes, size: int) -> tuple[list[_Nal], bool]:
    """Split a length-prefixed packet; the flag says the lengths tiled the packet exactly."""
    nals: list[_Nal] = []
    i, n = 0, len(data)
    while n - i >= size:
        length = int.from_bytes(data[i : i + size], "big")
        if length > n - i - size:
            return nals, False
        nals.append(_Nal(i, i + size, i + size + length))
        i += size + length
    return nals, i == n


def _annexb(data: bytes) -> list[_Nal]:
    """Split an Annex-B packet at 00 00 01; zeros before a start code belong to the next NAL's framing."""
    nals: list[_Nal] = []
    prev_body = 0
    j = data.find(b"\x00\x00\x01")
    while j >= 0:
        start = prev_body + len(data[prev_body:j].rstrip(b"\x00"))
        if nals:
            nals[-1] = nals[-1]._replace(end=start)
        nals.append(_Nal(start, j + 3, len(data)))
        prev_body = j + 3
        j = data.find(b"\x00\x00\x01", prev_body)
    return nals


def _looks_annexb(data: bytes) -> bool:
    """Annex-B if it opens with >= 2 zeros then 01, unless 4-byte lengths tile it (a 256..511-byte first NAL)."""
    zeros = len(data) - len(data.lstrip(b"\x00"))
    if zeros < 2 or data[zeros : zeros + 1] != b"\x01":
        return False
    nals, exact = _length_chain(data, 4)
    return not (exact and all(n.end - n.body >= 2 for n in nals))


def _split(data: bytes, length_size: int | None) -> tuple[list[_Nal], int, bool]:
    """(NAL units, length size or 0 for Annex-B, whether the framing parsed cleanly)."""
    if length_size is None:
        length_size = 0 if _looks_annexb(data) else 4
    if length_size == 0:
        return _annexb(data), 0, True
    if not 1 <= length_size <= 4:
        raise ValueError(f"length_size must be 0 (Annex-B), 1, 2, 3 or 4, got {length_size!r}")
    nals, exact = _length_chain(data, length_size)
    return nals, length_size, exact


def _frame(nal: bytes, length_size: int) -> bytes:
    if length_size == 0:
        return _START_CODE + nal
    if len(nal) >= 1 << (8 * length_size):
        raise ValueError(f"NAL of {len(nal)} bytes does not fit a {length_size}-byte length field")
    return len(nal).to_bytes(length_size, "big") + nal


# --- packet operations ---------------------------------------------------------------------------------


# NAL types after which FFmpeg's vvc parser starts a new access unit (it never does so for a prefix SEI).
_VVC_AU_STARTERS = {12, 13, 14, 15, 16, 17, 20, 26, 28, 29}


def _copy_ids(c: _Codec, nal: bytes, ref: bytes) -> bytes:
    """Give an SEI NAL the nuh_layer_id and TemporalId of the picture (``ref``: its VCL/PH NAL header).

    Both specs require a prefix SEI's TemporalId >= the access unit's, so TemporalId 0 is wrong inside a
    higher temporal layer and sub-layer extraction would strand the SEI on another picture.
    """
    if c.ph_type < 0:  # HEVC: F(1) type(6) layer(6) tid+1(3)
        return bytes([(nal[0] & 0xFE) | (ref[0] & 0x01), ref[1]]) + nal[2:]
    return bytes([ref[0] & 0x3F, (nal[1] & 0xF8) | (ref[1] & 0x07)]) + nal[2:]  # VVC: F R layer(6) | type(5) tid+1(3)


def insert_nal(data: bytes, nal: bytes, codec: str, *, length_size: int | None = None, aud: bool = False) -> bytes:
    """Splice ``nal`` into one access unit before its first VCL NAL unit (VVC: before its picture header).

    The packet keeps its framing: Annex-B gets a 4-byte start code, length-prefixed packets a length field
    of ``length_size`` bytes (detected: Annex-B if the packet opens with a start code, else 4). A prefix SEI
    NAL takes the layer id and TemporalId of the picture. ValueError if the packet cannot be parsed or holds
    no VCL NAL unit.

    ``aud`` (VVC only): also put an access unit delimiter first when the AU has no parameter set, APS or AUD
    before its slices. FFmpeg's vvc parser (raw .266 input) otherwise glues the SEI to the previous access
    unit and the records surface on the wrong frame. The AUD is not removed by ``strip_records_nal``.
    """
    c = _codec(codec)
    data = bytes(data)
    nal = bytes(nal)
    nals, size, ok = _split(data, length_size)
    if not ok:
        raise ValueError("packet is not a clean sequence of length-prefixed NAL units")
    for k, u in enumerate(nals):
        t = c.nal_type(data, u)
        if not (0 <= t <= c.last_vcl or t == c.ph_type):
            continue
        ref = data[u.body : u.body + 2]
        if len(nal) >= 2 and c.nal_type(nal, _Nal(0, 0, len(nal))) == c.sei_type:
            nal = _copy_ids(c, nal, ref)
        framed = _frame(nal, size)
        out = data[: u.start] + framed + data[u.start :]
        if c.ph_type < 0 and k == 0 and size == 4 and framed[:3] == b"\x00\x00\x01":
            out = _hevc_aud(ref) + out  # see _hevc_aud
        if aud and c.ph_type >= 0 and not any(c.nal_type(data, v) in _VVC_AU_STARTERS for v in nals[:k]):
            first_vcl = next((c.nal_type(data, v) for v in nals[k:] if 0 <= c.nal_type(data, v) <= c.last_vcl), -1)
            irap = 0x80 if 7 <= first_vcl <= 10 else 0  # aud_irap_or_gdr_flag; aud_pic_type 2 (I/P/B); stop bit
            delim = bytes([ref[0] & 0x3F, (20 << 3) | (ref[1] & 0x07), irap | 0x28])
            out = out[: nals[0].start] + _frame(delim, size) + out[nals[0].start :]
        return out
    raise ValueError("packet holds no VCL NAL unit")


HEVC_AUD_TYPE = 35  # access unit delimiter nal_unit_type


def _hevc_aud(ref: bytes) -> bytes:
    """A 4-byte-length-framed HEVC access unit delimiter (pic_type 2) with the picture's TemporalId.

    Put first when our SEI would open a length-prefixed packet with a length of 256-511: its length field
    then reads 00 00 01 xx, and FFmpeg's hevc_mp4toannexb (raw .265 output) takes such a packet for
    Annex-B and passes it through unconverted, which leaves an undecodable stream. ``strip_records_nal``
    removes it again (an AUD directly before our SEI at the start of such a packet)."""
    return _frame(bytes([HEVC_AUD_TYPE << 1, ref[1] & 0x07, 0x50]), 4)


def _genpost_messages(c: _Codec, data: bytes, u: _Nal) -> list[tuple[int, bytes, bool]] | None:
    """Messages of a prefix SEI NAL, or None if ``u`` is not one."""
    if c.nal_type(data, u) != c.sei_type:
        return None
    return list(_sei_messages(remove_emulation_prevention(data[u.body + 2 : u.end])))


def prefix_sei_messages(
    data: bytes, codec: str, *, length_size: int | None = None, part: str = "all"
) -> Iterator[tuple[int, bytes, bool]]:
    """(payloadType, payload, truncated) of every message in the packet's prefix SEI NAL units, in order.
    ``part="head"``: only those before the packet's last VCL NAL unit; ``"tail"``: only those after it,
    which belong to the next access unit (FFmpeg's raw VVC parser glues them to the previous packet, see
    docs/bitstream.md). Never raises on bad packet bytes."""
    c = _codec(codec)
    data = bytes(data)
    nals, _, _ = _split(data, length_size)
    vcl = [k for k, u in enumerate(nals) if 0 <= c.nal_type(data, u) <= c.last_vcl]
    last = vcl[-1] if vcl else len(nals)
    for k, u in enumerate(nals):
        if part == "all" or (part == "head") == (k < last):
            yield from _genpost_messages(c, data, u) or ()


def extract_records(data: bytes, codec: str, *, length_size: int | None = None) -> tuple[list[Record], int]:
    """All genpost records in the prefix SEI NAL units of one packet; (records, malformed). Never raises
    on bad packet bytes: damaged framing or truncated messages yield what can be salvaged."""
    c = _codec(codec)
    data = bytes(data)
    nals, _, ok = _split(data, length_size)
    records: list[Record] = []
    bad = 0 if ok else 1
    for u in nals:
        for ptype, payload, truncated in _genpost_messages(c, data, u) or ():
            if _is_ours(ptype, payload):
                recs, b = decode_records(payload[16:])
                records += recs
                bad += b + (1 if truncated and not b else 0)
    return records, bad


def strip_records_nal(data: bytes, codec: str, *, length_size: int | None = None, nnpf: bool = False) -> bytes:
    """Remove genpost SEI from a packet, keeping other SEI messages; undoes ``insert_nal`` byte-exactly.
    ``nnpf``: NNPFC/NNPFA messages (payloadType 210, 211: the declared chain) go too."""
    c = _codec(codec)
    data = bytes(data)
    nals, size, _ = _split(data, length_size)
    out, pos = [], 0
    strip = (lambda t, p: _is_ours(t, p) or t in (210, 211)) if nnpf else _is_ours
    if c.ph_type < 0 and size in (0, 4) and len(nals) > 1 and c.nal_type(data, nals[0]) == HEVC_AUD_TYPE:  # _hevc_aud's
        first = _genpost_messages(c, data, nals[1])  # (kept in Annex-B too: a raw .265 written from such packets)
        if (nals[0].end - nals[0].body == 3 and 256 <= nals[1].end - nals[1].body <= 511
                and first and all(strip(t, p) for t, p, _ in first)):  # fmt: skip
            pos = nals[1].start
    for u in nals:
        messages = _genpost_messages(c, data, u)
        if not messages or not any(strip(t, p) for t, p, _ in messages):
            continue
        out.append(data[pos : u.start])
        pos = u.end
        others = [(t, p) for t, p, _ in messages if not strip(t, p)]
        if others:  # mixed NAL: rebuild it without our messages
            new = _sei_nal_from_messages(c, others)
            out.append(data[u.start : u.body] + new if size == 0 else _frame(new, size))
    out.append(data[pos:])
    return b"".join(out)
