"""The record unit (issue 16, "lean records"; genpost.sideinfo.record, version 3): layout, round trip, registry
and escape, CRC choice, units of another version counted as malformed, the overhead in the default carriage,
and deterministic fuzzing. Pure Python."""

from __future__ import annotations

import binascii
import random
import struct
import zlib

import pytest
from conftest import v3_crc_matches

from genpost.sideinfo import (
    GENPOST_UUID,
    MAX_RECORD_PAYLOAD,
    Record,
    decode_records,
    encode_records,
    extract_records,
    insert_nal,
    record_overhead_bytes,
    records_from_sei_unregistered,
    sei_nal,
    sei_nal_messages,
)
from genpost.sideinfo.record import CRC16_MAX, FORMAT_CODES, SEI_FRAMING, parse_unit
from genpost.sideinfo.sidecar import encode_block

SLICE = bytes([19 << 1, 1]) + b"\xaf" * 30  # an HEVC IDR slice
PKT = len(SLICE).to_bytes(4, "big") + SLICE

RECS = [
    Record("wiener/1", 0, b"\x11" * 40),
    Record("wiener/1+update", 0, b"\x22" * 90, count=33),
    Record("third-party/7", 2**32 - 1, b""),
    Record("gan-enhance/1", 16384, bytes(range(200))),
]


def crc16(data: bytes) -> bytes:
    return binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")


def test_lone_record_layout():
    unit = encode_records([Record("wiener/1", 100, b"\x55" * 40)])
    assert unit[:3] == bytes([0x30, FORMAT_CODES["wiener/1"], 100])  # header (CRC-16), code, frame; no count, no length
    assert unit[3:43] == b"\x55" * 40 and unit[43:] == crc16(unit[:43]) and len(unit) == 40 + 5
    run = encode_records([Record("wiener/1", 300, b"\x01", count=33)])
    assert run == bytes([0x30, 0x40 | 1, 0xAC, 0x02, 33, 1]) + crc16(run[:6])  # R flag, 2-byte frame varint


def test_several_records_layout():
    unit = encode_records([Record("wiener/1", 5, b"ab"), Record("x/1", 6, b"cde")])
    # first: M flag and a payload_len; last: the escaped id and the rest of the unit before the CRC
    assert unit[:5] == bytes([0x30, 0x80 | 1, 5, 2]) + b"a" and unit[5] == ord("b")
    assert unit[6:15] == bytes([0, 3]) + b"x/1" + bytes([6]) + b"cde" and unit[15:] == crc16(unit[:15])


def test_round_trip_all_kinds():
    assert decode_records(encode_records(RECS)) == (RECS, 0)
    for r in RECS:
        assert decode_records(encode_records([r])) == ([r], 0)
    big = Record("x" * 64, 5, b"\x00" * MAX_RECORD_PAYLOAD, count=65535)
    assert decode_records(encode_records([big, big])) == ([big, big], 0)
    assert encode_records([]) == b"" and decode_records(b"") == ([], 0)
    assert records_from_sei_unregistered(GENPOST_UUID + encode_records(RECS)) == (RECS, 0)


def test_crc16_for_small_units_crc32_for_large():
    for size in range(CRC16_MAX - 8, CRC16_MAX + 8):
        unit = encode_records([Record("wiener/1", 1, b"\x07" * size)])
        covered = unit[: -2 if unit[0] == 0x30 else -4]
        assert (unit[0] == 0x30) == (len(covered) <= CRC16_MAX), size
        if unit[0] == 0x31:
            assert int.from_bytes(unit[-4:], "big") == zlib.crc32(covered)
        assert decode_records(unit)[0][0].payload == b"\x07" * size
    # a reader takes CRC-16 only on small units: a large unit relabelled CRC-16, correct CRC or not, is refused
    body = bytes([0x30, 1, 1]) + b"\x07" * CRC16_MAX
    assert decode_records(body + crc16(body)) == ([], 1)


def test_reserved_bits_empty_units_and_unknown_codes():
    good = encode_records([Record("wiener/1", 1, b"x")])
    for header in (0x32, 0x34, 0x38, 0x3E):
        bad = bytes([header]) + good[1:-2]
        assert decode_records(bad + crc16(bad)) == ([], 1)
    assert decode_records(bytes([0x30]) + crc16(bytes([0x30]))) == ([], 1)  # no record
    # a format code added after this reader: that record is skipped and counted, the others kept
    unit = bytes([0x30, 0x80 | 63, 1, 2]) + b"??" + bytes([1, 2]) + b"ok"
    assert decode_records(unit + crc16(unit)) == ([Record("wiener/1", 2, b"ok")], 1)


def test_registry_escape_path():
    third = Record("acme-sharpen/3", 7, b"\x99" * 5)
    unit = encode_records([third])
    assert unit[1] == 0 and unit[2] == len("acme-sharpen/3") and unit[3:17] == b"acme-sharpen/3"
    assert decode_records(unit) == ([third], 0)
    # a third-party writer that spells out a registered id is read the same as the code
    spelled = bytes([0x30, 0, 8]) + b"wiener/1" + bytes([7]) + b"\x99"
    assert decode_records(spelled + crc16(spelled)) == ([Record("wiener/1", 7, b"\x99")], 0)
    for bad_id in (b"", b"a b", b"\x7f", b"x" * 65):
        forged = bytes([0x30, 0, len(bad_id)]) + bad_id + bytes([7]) + b"\x99"
        assert decode_records(forged + crc16(forged)) == ([], 1), bad_id
    assert record_overhead_bytes("acme-sharpen/3", "sei") == record_overhead_bytes("wiener/1", "sei") + 1 + 14
    assert all(1 <= code <= 63 for code in FORMAT_CODES.values()) and len(set(FORMAT_CODES.values())) == len(FORMAT_CODES)


def test_registry_names_every_first_party_format():
    """Every side-info format genpost and its first-party plugins declare, and its update format, has a code
    (read from the sources: importing the plugins would pull in torch)."""
    import re
    from pathlib import Path

    from genpost.sideinfo import update_format

    root = Path(__file__).parents[1]
    sources = [*(root / "genpost").rglob("*.py"), *(root / "plugins").rglob("*.py")]
    formats = {m for f in sources for m in re.findall(r'^\s+side_info = "([^"]+)"', f.read_text(), re.M)}
    assert len(formats) >= 5  # wiener and the four plugins
    for f in formats:
        assert f in FORMAT_CODES and update_format(f) in FORMAT_CODES, f


def prerelease_v1(r: Record) -> bytes:
    """A record in the pre-release version-1 layout (b"GPSI" | 1 | id | frame | count | length | payload | CRC-32),
    which no released genpost wrote and this reader does not take."""
    fid = r.format_id.encode()
    body = b"GPSI" + bytes([1, len(fid)]) + fid + struct.pack(">IHI", r.frame_index, r.count, len(r.payload)) + r.payload
    return body + zlib.crc32(body).to_bytes(4, "big")


def test_units_of_another_version_are_malformed_not_read():
    """Only version 3 is read: a unit of any other version (a pre-release layout, a later genpost's) yields
    no records and counts as one malformed unit, like a damaged one; its neighbours are unaffected."""
    v3 = encode_records(RECS[1:3])
    others = [prerelease_v1(RECS[0]), prerelease_v1(RECS[0]) + prerelease_v1(RECS[2]), encode_block(RECS)]
    for nibble in (0, 1, 2, 4, 5, 15):  # a well-formed unit but for its version, CRC and all
        body = bytes([nibble << 4]) + v3[1:-2]
        others.append(body + crc16(body))
    for unit in others:
        assert decode_records(unit) == ([], 1), unit[:8]
        assert records_from_sei_unregistered(GENPOST_UUID + unit) == ([], 1)
    # one access unit with three genpost messages: the unit of another version is the only one lost
    nal = sei_nal_messages("hevc", [(5, GENPOST_UUID + others[0]), (5, GENPOST_UUID + v3), (5, GENPOST_UUID + others[-1])])
    assert extract_records(insert_nal(PKT, nal, "hevc"), "hevc") == (RECS[1:3], 2)


def test_damaged_unit_degrades_only_its_access_unit():
    units = [encode_records([Record("wiener/1", i, bytes([i]) * 30)]) for i in range(4)]
    packets = [insert_nal(PKT, sei_nal_messages("hevc", [(5, GENPOST_UUID + u)]), "hevc") for u in units]
    hit = bytearray(packets[2])
    hit[-len(SLICE) - 10] ^= 0x10  # inside the third access unit's payload
    got = [extract_records(p, "hevc") for p in packets[:2] + [bytes(hit)] + packets[3:]]
    assert [r for r, _ in got] == [[Record("wiener/1", i, bytes([i]) * 30)] if i != 2 else [] for i in range(4)]
    assert [b for _, b in got] == [0, 0, 1, 0]


def sei_overhead(recs: list[Record]) -> tuple[int, int]:
    """(bytes beyond the payloads of the whole SEI NAL unit with its 4-byte length, of which the unit's)."""
    payload = sum(len(r.payload) for r in recs)
    return 4 + len(sei_nal("hevc", recs)) - payload, len(encode_records(recs)) - payload


def test_overhead_in_the_default_carriage():
    """Issue 16: <= 12 bytes per record beyond the SEI framing; a lone record's total."""
    lone, lone_unit = sei_overhead([Record("wiener/1", 100, b"\x55" * 40)])
    assert (lone, lone_unit) == (30, 5) and lone - lone_unit == SEI_FRAMING == 25
    assert lone <= record_overhead_bytes("wiener/1", "sei") <= lone + 3  # frame varint and count budgeted
    table = {}
    for n in (1, 2, 4, 8, 16):
        total, unit = sei_overhead([Record("wiener/1", 100 + i, b"\x55" * 40) for i in range(n)])
        assert unit / n <= 12, n
        table[n] = round(total / n, 2)
    assert table == {1: 30.0, 2: 16.5, 4: 9.75, 8: 6.75, 16: 4.94}  # docs/bitstream.md, "Measured overhead"
    # the worst genpost record beyond the framing: frame index >= 2^14, a run, a large unit (CRC-32)
    _, unit = sei_overhead([Record("wiener/1+update", 20000, b"\x55" * 3000, count=65535)])
    assert unit <= 12


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fuzz_random_bytes_never_raise_never_forge(seed):
    rng = random.Random(seed)
    forged = 0
    for _ in range(3000):
        buf = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
        if rng.random() < 0.7:  # mostly version-3 headers, so the unit parser runs past its first byte
            buf = bytes([0x30 | rng.choice([0, 1])]) + buf
        recs, bad = decode_records(buf)
        assert bad >= 0 and all(isinstance(r, Record) for r in recs)
        assert parse_unit(buf) is None or v3_crc_matches(buf)
        forged += bool(recs)
        assert not recs or v3_crc_matches(buf)  # only a version-3 unit whose CRC matches yields records
    assert forged <= 3  # ~0.03 expected from CRC-16 (and 2^-32 for CRC-32)


def test_every_truncation_and_bit_flip_is_caught():
    for recs in (RECS[:1], RECS, [Record("wiener/1", 3, b"\x01\x02\x03")]):
        unit = encode_records(recs)
        for k in range(len(unit)):  # truncations
            assert decode_records(unit[:k]) == ([], min(k, 1)), k
        for bit in range(8 * len(unit)):  # CRC-16 and CRC-32 catch every single-bit error
            bad = bytearray(unit)
            bad[bit // 8] ^= 1 << (bit % 8)
            got, n_bad = decode_records(bytes(bad))
            assert got == [] and n_bad >= 1, bit


def test_fuzz_mutations_yield_originals_or_a_matching_crc():
    """Random damage to units: the reader returns the original records or none, except where the damaged
    unit's CRC happens to match (checked independently): CRC-16 lets 1 in 65536 through. Fixed seed."""
    rng = random.Random(16)
    pool = [r for r in RECS if len(r.payload) < 100] + [Record("wiener/1", 9, b"\x03")]
    forged = 0
    for _ in range(20000):
        recs = rng.sample(pool, rng.randint(1, 3))
        b = bytearray(encode_records(recs))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b)) if b else 0
            op = rng.randrange(5)
            if op == 0 and b:
                b[i] ^= 1 << rng.randrange(8)
            elif op == 1 and b:
                b[i] = rng.getrandbits(8)
            elif op == 2:
                del b[i : i + rng.randint(1, 8)]
            elif op == 3:
                b[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
            else:
                del b[i:]
        got, bad = decode_records(bytes(b))
        if got and got != recs:
            assert v3_crc_matches(bytes(b)), (recs, bytes(b))
            forged += 1
    assert forged <= 3  # ~0.3 expected
