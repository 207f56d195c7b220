"""genpost.sideinfo: record unit, SEI carriage, sidecar and its blocks, index. Pure Python, fast."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from conftest import v3_crc_matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genpost.sideinfo import (
    GENPOST_UUID,
    MAX_RECORD_PAYLOAD,
    Record,
    RecordIndex,
    decode_records,
    encode_records,
    extract_records,
    insert_nal,
    read_sidecar,
    records_from_sei_unregistered,
    sei_nal,
    strip_records_nal,
    write_sidecar,
)
from genpost.sideinfo.layout import varint
from genpost.sideinfo.nal import add_emulation_prevention, remove_emulation_prevention
from genpost.sideinfo.sidecar import encode_block, scan_blocks

DATA = Path(__file__).parent / "data"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RECS = [
    Record("wiener/1", 0, b"\x11" * 40),
    Record("gan-blockmap/1", 7, b""),
    Record("w", 2**32 - 1, bytes(range(200))),
]


def hevc_nal(t: int, body: bytes) -> bytes:
    return bytes([t << 1, 0x01]) + body


def vvc_nal(t: int, body: bytes) -> bytes:
    return bytes([0x00, (t << 3) | 0x01]) + body


# Real-looking access units: parameter sets, an encoder-info SEI with another UUID, then slices.
OTHER_SEI = bytes([5, 20]) + bytes(range(16)) + b"x265" + b"\x80"
HEVC_AU = [
    hevc_nal(32, bytes.fromhex("0c01ffff016000000300b0000003000003005dac09")),  # VPS
    hevc_nal(33, bytes.fromhex("01016000000300b0000003000003005da00580802e1f1396bb9324bb94828481")),  # SPS
    hevc_nal(34, bytes.fromhex("c172b46240")),  # PPS
    hevc_nal(39, OTHER_SEI),  # prefix SEI, not ours
    hevc_nal(19, b"\xaf\x1c" + bytes(range(256)) * 2),  # IDR_W_RADL slice (> 256 bytes)
    hevc_nal(19, b"\x2f\x00\x00\x03\x01" + b"\x55" * 40),  # second slice segment
]
VVC_AU = [
    vvc_nal(15, bytes.fromhex("0080028008022d0030c8")),  # SPS
    vvc_nal(16, bytes.fromhex("0000408808")),  # PPS
    vvc_nal(17, bytes.fromhex("0a00f0")),  # prefix APS
    vvc_nal(8, b"\x80\x44" + bytes(range(64))),  # IDR_N_LP slice
]


def annexb(nals, three_byte_first=False) -> bytes:
    codes = [b"\x00\x00\x01" if three_byte_first and i else b"\x00\x00\x00\x01" for i in range(len(nals))]
    return b"".join(c + n for c, n in zip(codes, nals))


def length_prefixed(nals, size=4) -> bytes:
    return b"".join(len(n).to_bytes(size, "big") + n for n in nals)


# --- records ------------------------------------------------------------------------------------------


def test_record_round_trip():
    buf = encode_records(RECS)
    assert decode_records(buf) == (RECS, 0)
    assert encode_records([]) == b"" and decode_records(b"") == ([], 0)
    big = Record("x" * 64, 5, b"\x00" * MAX_RECORD_PAYLOAD)
    assert decode_records(encode_records([big])) == ([big], 0)


@pytest.mark.parametrize(
    "rec",
    [
        Record("", 0, b""),
        Record("x" * 65, 0, b""),
        Record("wi ener/1", 0, b""),
        Record("wiéner/1", 0, b""),
        Record("a", -1, b""),
        Record("a", 2**32, b""),
        Record("a", 0, "text"),
        Record("a", 0, b"\x00" * (MAX_RECORD_PAYLOAD + 1)),
    ],
)
def test_encode_rejects(rec):
    with pytest.raises(ValueError):
        encode_records([rec])


def test_decode_garbage():
    assert decode_records(b"no records here") == ([], 1)
    a, b = encode_block([RECS[0]]), encode_block([RECS[2]])  # sidecar blocks: self-delimiting, scanned
    damaged = bytearray(encode_block([RECS[1]]))
    damaged[4] = 2
    assert scan_blocks(a + bytes(damaged) + b) == ([RECS[0], RECS[2]], 1)
    assert scan_blocks(b"junk" + a + b"\x00\x00" + b) == ([RECS[0], RECS[2]], 2)


def test_every_bit_flip_loses_only_that_block():
    blocks = [encode_block([r]) for r in RECS]
    buf = b"".join(blocks)
    bounds = [0]
    for blk in blocks:
        bounds.append(bounds[-1] + len(blk))
    for bit in range(len(buf) * 8):
        bad = bytearray(buf)
        bad[bit // 8] ^= 1 << (bit % 8)
        hit = next(i for i in range(3) if bounds[i] <= bit // 8 < bounds[i + 1])
        assert scan_blocks(bytes(bad)) == ([r for i, r in enumerate(RECS) if i != hit], 1), bit


def test_truncation_at_every_byte_of_a_sidecar():
    blocks = [encode_block([r]) for r in RECS]
    buf = b"".join(blocks)
    ends = {0: 0}
    for i in range(len(RECS)):
        ends[len(b"".join(blocks[: i + 1]))] = i + 1
    for k in range(len(buf) + 1):
        recs, bad = scan_blocks(buf[:k])
        complete = max(n for e, n in ends.items() if e <= k)
        assert recs == RECS[:complete] and bad == (0 if k in ends else 1), k


def test_duplicated_and_reordered_records():
    chunks = [encode_block([r]) for r in RECS]
    recs, bad = scan_blocks(chunks[2] + chunks[0] + chunks[0] + chunks[1] + chunks[2])
    assert bad == 0 and recs == [RECS[2], RECS[0], RECS[0], RECS[1], RECS[2]]
    idx = RecordIndex()
    idx.add(recs)
    idx.add([Record(RECS[0].format_id, RECS[0].frame_index, b"different")])
    assert idx.get("wiener/1", 0) == RECS[0].payload
    s = idx.stats()
    assert (s["duplicates"], s["conflicts"]) == (3, 1)
    assert idx.formats() == ["w", "wiener/1", "gan-blockmap/1"]


def test_hostile_nested_headers_stay_linear(monkeypatch):
    # Every candidate claims a payload running to the end of the buffer, so each reaches its CRC check: a
    # naive resync would CRC about n^2 / 64 bytes. The work is counted, not timed: the bytes checked stay
    # within the parser's linear budget (8 n, plus the one check that overdraws it).
    from genpost.sideinfo import sidecar

    n = 1 << 18
    out = bytearray(n)
    for pos in range(0, n - 64, 32):  # a block header whose body runs to the buffer's last 4 bytes
        out[pos : pos + 5] = b"G\xb2" + varint(n - pos - 9).ljust(3, b"\x80")[:3]
    checked = []
    crc32 = sidecar.zlib.crc32
    monkeypatch.setattr(sidecar.zlib, "crc32", lambda data, *rest: (checked.append(len(data)), crc32(data, *rest))[1])
    recs, bad = read_sidecar(b"GPSIDCAR\x01" + bytes(out))
    assert recs == [] and bad >= 1 and n < sum(checked) <= 9 * n


# --- index -------------------------------------------------------------------------------------------


def test_index_runs_cover_their_frames_and_first_arrival_wins():
    idx = RecordIndex()
    idx.add([Record("a/1", 2, b"run", count=4), Record("a/1", 4, b"late")])
    assert [idx.get("a/1", i) for i in range(7)] == [None, None, b"run", b"run", b"run", b"run", None]
    assert idx.stats()["formats"]["a/1"] == {"records": 1, "frames": 4, "bytes": 3}
    assert idx.conflicts == 1
    assert decode_records(encode_records([Record("a/1", 2, b"run", count=4)])) == ([Record("a/1", 2, b"run", 4)], 0)
    with pytest.raises(ValueError):
        encode_records([Record("a/1", 0, b"", count=0)])


def test_index_cap_and_stats():
    idx = RecordIndex(max_stream_bytes=100)
    idx.add([Record("a/1", i, b"x" * 30) for i in range(5)], bad=2)
    idx.add([Record("b/1", 0, b"y")])
    assert idx.frames("a/1") == {0, 1, 2} and idx.get("a/1", 3) is None and idx.get("zz", 0) is None
    assert idx.stats() == {
        "formats": {"a/1": {"records": 3, "frames": 3, "bytes": 90}, "b/1": {"records": 1, "frames": 1, "bytes": 1}},
        "malformed": 2,
        "duplicates": 0,
        "conflicts": 0,
        "over_cap": 2,
    }
    assert len(idx) == 4 and ("b/1", 0) in idx and list(idx.records("b/1")) == [Record("b/1", 0, b"y")]


# --- SEI NAL ---------------------------------------------------------------------------------------


def test_emulation_prevention_on_zero_payloads():
    recs = [Record("zeros/1", 0, bytes(5000)), Record("zeros/1", 1, b"\x00\x00\x01\x00\x00\x02\x00\x00\x03")]
    for codec in ("hevc", "vvc"):
        nal = sei_nal(codec, recs)
        body = nal[2:]
        for bad in (b"\x00\x00\x00", b"\x00\x00\x01", b"\x00\x00\x02"):
            assert bad not in body
        assert nal[-1] == 0x80
        slice_ = hevc_nal(1, b"\x80") if codec == "hevc" else vvc_nal(0, b"\x80")
        assert extract_records(annexb([nal, slice_], three_byte_first=True), codec) == (recs, 0)


@given(st.binary(max_size=300))
@FUZZ
def test_emulation_prevention_round_trip(rbsp):
    ebsp = add_emulation_prevention(rbsp)
    assert remove_emulation_prevention(ebsp) == rbsp
    for i in range(len(ebsp) - 2):
        assert not (ebsp[i] == 0 and ebsp[i + 1] == 0 and ebsp[i + 2] <= 2)


@pytest.mark.parametrize("size", [0, 1, 238, 239, 254, 255, 300, 509, 510, 1000])
def test_sei_header_bytes(size):
    # payloadSize = 16 (uuid) + record bytes; check the 0xFF coding at the 255 boundaries.
    rec = Record("p", 0, b"\x42" * size)
    nal = sei_nal("hevc", [rec])
    psize = 16 + len(encode_records([rec]))
    assert nal[:3] == bytes([0x4E, 0x01, 5])
    assert nal[3 : 3 + psize // 255] == b"\xff" * (psize // 255) and nal[3 + psize // 255] == psize % 255
    assert nal[4 + psize // 255 : 20 + psize // 255] == GENPOST_UUID
    assert sei_nal("vvc", [rec])[:3] == bytes([0x00, 0xB9, 5])


@pytest.mark.parametrize("codec,au", [("hevc", HEVC_AU), ("vvc", VVC_AU)])
@pytest.mark.parametrize("framing", ["annexb4", "annexb3", "length"])
def test_insert_extract_strip(codec, au, framing):
    pkt = length_prefixed(au) if framing == "length" else annexb(au, framing == "annexb3")
    assert extract_records(pkt, codec) == ([], 0)
    nal = sei_nal(codec, RECS)
    new = insert_nal(pkt, nal, codec)
    assert extract_records(new, codec) == (RECS, 0)
    assert strip_records_nal(new, codec) == pkt
    # placed right before the first slice, with the packet's own framing
    first_vcl = [n for n in au if (n[0] >> 1 if codec == "hevc" else n[1] >> 3) <= (31 if codec == "hevc" else 11)][0]
    framed = (len(nal).to_bytes(4, "big") if framing == "length" else b"\x00\x00\x00\x01") + nal
    assert new.index(framed) < new.index(first_vcl) and new.index(framed) > new.index(au[1])
    # several genpost SEI NAL units in one packet: all read, all stripped
    twice = insert_nal(new, sei_nal(codec, [Record("more/1", 9, b"!")]), codec)
    assert extract_records(twice, codec) == (RECS + [Record("more/1", 9, b"!")], 0)
    assert strip_records_nal(twice, codec) == pkt


def test_explicit_length_size_and_no_vcl():
    nal = sei_nal("hevc", RECS[:1])
    pkt2 = length_prefixed(HEVC_AU, size=2)
    new = insert_nal(pkt2, nal, "hevc", length_size=2)
    assert extract_records(new, "hevc", length_size=2) == (RECS[:1], 0)
    assert strip_records_nal(new, "hevc", length_size=2) == pkt2
    with pytest.raises(ValueError):
        insert_nal(annexb(HEVC_AU[:3]), nal, "hevc")
    with pytest.raises(ValueError):
        insert_nal(annexb(HEVC_AU), nal, "av1")


def test_vvc_inserted_before_picture_header():
    au = VVC_AU[:3] + [vvc_nal(19, b"\x01\x02"), VVC_AU[3]]
    new = insert_nal(annexb(au), sei_nal("vvc", RECS), "vvc")
    assert new.index(sei_nal("vvc", RECS)) < new.index(au[3])
    assert extract_records(new, "vvc") == (RECS, 0)


def test_sei_takes_layer_and_temporal_id_of_picture():
    hevc_b = bytes([1 << 1, 0x03]) + b"\x11" * 20  # TRAIL_R, TemporalId 2
    vvc_b = bytes([0x00, (0 << 3) | 0x04]) + b"\x22" * 20  # TRAIL, TemporalId 3
    for codec, au in (("hevc", [HEVC_AU[2], hevc_b]), ("vvc", [VVC_AU[2], vvc_b])):
        pkt = annexb(au)
        new = insert_nal(pkt, sei_nal(codec, RECS), codec)
        sei = new[len(annexb(au[:1])) + 4 :][:2]
        assert sei == (bytes([0x4E, 0x03]) if codec == "hevc" else bytes([0x00, 0xBC]))
        assert extract_records(new, codec) == (RECS, 0) and strip_records_nal(new, codec) == pkt


def test_vvc_aud_option():
    trail = vvc_nal(0, b"\x33" * 10)
    nal = sei_nal("vvc", RECS)
    new = insert_nal(annexb([trail]), nal, "vvc", aud=True)
    assert new == annexb([vvc_nal(20, b"\x28"), nal, trail])
    idr = insert_nal(length_prefixed([VVC_AU[3]]), nal, "vvc", aud=True)
    assert idr == length_prefixed([vvc_nal(20, b"\xa8"), nal, VVC_AU[3]])
    with_aps = annexb(VVC_AU)  # parameter sets already start the access unit: no AUD needed
    assert insert_nal(with_aps, nal, "vvc", aud=True) == insert_nal(with_aps, nal, "vvc")
    assert extract_records(new, "vvc") == (RECS, 0)
    assert strip_records_nal(new, "vvc") == annexb([vvc_nal(20, b"\x28"), trail])  # the AUD stays
    hevc = annexb(HEVC_AU)
    assert insert_nal(hevc, sei_nal("hevc", RECS), "hevc", aud=True) == insert_nal(hevc, sei_nal("hevc", RECS), "hevc")


def test_mixed_sei_nal_keeps_other_messages():
    ours = GENPOST_UUID + encode_records(RECS[:1])
    other = bytes(range(16)) + b"hello"
    rbsp = bytes([5, len(other)]) + other + bytes([5, len(ours)]) + ours + b"\x80"
    pkt = annexb([HEVC_AU[0], hevc_nal(39, add_emulation_prevention(rbsp)), HEVC_AU[4]])
    assert extract_records(pkt, "hevc") == (RECS[:1], 0)
    stripped = strip_records_nal(pkt, "hevc")
    assert extract_records(stripped, "hevc") == ([], 0) and b"hello" in stripped
    assert stripped == annexb([HEVC_AU[0], hevc_nal(39, bytes([5, len(other)]) + other + b"\x80"), HEVC_AU[4]])


def test_length_prefixed_first_nal_256_to_511_bytes():
    au = [hevc_nal(19, b"\x11" * 300)]  # length 0x0000012e: the packet begins 00 00 01
    pkt = length_prefixed(au)
    assert pkt[:3] == b"\x00\x00\x01"
    new = insert_nal(pkt, sei_nal("hevc", RECS), "hevc")
    sei = 7 if new[4:6] == bytes([0x46, 0x01]) else 0  # after an AUD when the SEI's own length reads 00 00 01
    assert new[sei + 4 : sei + 6] == bytes([0x4E, 0x01]) and extract_records(new, "hevc") == (RECS, 0)


def test_real_vvc_stream_unchanged_after_strip():
    data = (DATA / "vvc" / "bigbuckbunny_416x240_25_ra_qp27.266").read_bytes()  # VTM output: many AUs
    new = insert_nal(data, sei_nal("vvc", RECS), "vvc")
    assert len(new) > len(data) and extract_records(new, "vvc") == (RECS, 0)
    assert strip_records_nal(new, "vvc") == data


def test_records_from_sei_unregistered():
    assert records_from_sei_unregistered(GENPOST_UUID + encode_records(RECS)) == (RECS, 0)
    assert records_from_sei_unregistered(bytes(16) + encode_records(RECS)) == ([], 0)
    assert records_from_sei_unregistered(b"short") == ([], 0)
    assert records_from_sei_unregistered(GENPOST_UUID + b"junk") == ([], 1)


def test_truncated_sei_loses_its_block():
    cut = annexb(HEVC_AU[:3] + [sei_nal("hevc", RECS)])[:-50]  # ends inside the third record's payload
    assert extract_records(cut, "hevc") == ([], 1)  # one CRC per unit (per access unit)


# --- sidecar -------------------------------------------------------------------------------------------


def test_sidecar_round_trip(tmp_path):
    f = io.BytesIO()
    n = write_sidecar(f, RECS)
    data = f.getvalue()
    assert n == len(data) and data[:9] == b"GPSIDCAR\x01" and read_sidecar(data) == (RECS, 0)
    write_sidecar(tmp_path / "x.gpsi", RECS)
    assert read_sidecar((tmp_path / "x.gpsi").read_bytes()) == (RECS, 0)
    assert read_sidecar(b"GPSIDCAR\x02" + data[9:]) == (RECS, 1)
    assert read_sidecar(data[9:]) == (RECS, 1)
    assert read_sidecar(b"") == ([], 1)


# --- fuzzing -------------------------------------------------------------------------------------------


def _mutate(data: st.DataObject, buf: bytes) -> bytes:
    b = bytearray(buf)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "set", "delete", "insert", "dup", "truncate"]))
        i = data.draw(st.integers(0, max(len(b) - 1, 0)))
        j = data.draw(st.integers(i, min(len(b), i + 64)))
        if op == "flip" and b:
            b[i] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "set" and b:
            b[i] = data.draw(st.sampled_from([0, 1, 3, 0x80, 0xFF]))
        elif op == "delete":
            del b[i:j]
        elif op == "insert":
            b[i:i] = data.draw(st.binary(max_size=32))
        elif op == "dup":
            b[j:j] = b[i:j]
        elif op == "truncate":
            del b[i:]
    return bytes(b)


records_st = st.lists(
    st.builds(Record, st.text("abcxyz/-1", min_size=1, max_size=8), st.integers(0, 2**32 - 1), st.binary(max_size=64)),
    max_size=4,
)


def _units(packet: bytes, codec: str) -> list[bytes]:
    from genpost.sideinfo import prefix_sei_messages

    return [p[16:] for t, p, _ in prefix_sei_messages(packet, codec) if t == 5 and p[:16] == GENPOST_UUID]


def _check(result, originals=None, units=()):
    """``units``: the version-3 units the bytes held; a record not among ``originals`` is allowed only
    where one of them passes its CRC (a CRC-16 false accept), never otherwise."""
    recs, bad = result
    assert isinstance(bad, int) and bad >= 0
    assert all(isinstance(r, Record) for r in recs)
    if originals is not None and not all(r in originals for r in recs):  # CRC: mutations never invent records
        assert any(v3_crc_matches(u) for u in units), recs


@given(st.binary(max_size=2000))
@FUZZ
def test_fuzz_arbitrary_bytes(buf):
    _check(decode_records(buf))
    _check(read_sidecar(buf))
    _check(records_from_sei_unregistered(buf))
    for codec in ("hevc", "vvc"):
        _check(extract_records(buf, codec))
        _check(extract_records(b"\x00\x00\x01" + buf, codec))
        strip_records_nal(buf, codec)


@given(records_st, st.data())
@FUZZ
def test_fuzz_mutated_streams(recs, data):
    mutated = _mutate(data, encode_records(recs))
    _check(decode_records(mutated), recs, [mutated])
    f = io.BytesIO()
    write_sidecar(f, recs)
    _check(read_sidecar(_mutate(data, f.getvalue())), recs)


@given(records_st, st.sampled_from(["hevc", "vvc"]), st.booleans(), st.data())
@FUZZ
def test_fuzz_mutated_packets(recs, codec, lp, data):
    au = HEVC_AU if codec == "hevc" else VVC_AU
    pkt = length_prefixed(au) if lp else annexb(au)
    new = insert_nal(pkt, sei_nal(codec, recs), codec)
    assert extract_records(new, codec) == (recs, 0) and strip_records_nal(new, codec) == pkt
    mutated = _mutate(data, new)
    _check(extract_records(mutated, codec), recs, _units(mutated, codec))
    strip_records_nal(mutated, codec)


def test_no_heavy_imports():
    """The wire format stays importable and fuzzable without av, numpy or torch."""
    for path in (Path(__file__).parents[1] / "genpost" / "sideinfo").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            assert not {n.split(".")[0] for n in names} & {"av", "numpy", "torch"}, path


# --- sidecar blocks -------------------------------------------------------------------------------------


def test_sidecar_block_layout_and_per_record_cost():
    one = encode_block([Record("wiener/1", 5, b"\xaa" * 10)])
    assert one[:2] == b"G\xb2" and one[2] == len(one) - 7 and one[3:13] == b"\x01\x08wiener/1"
    assert one[13:17] == bytes([0, 5, 1, 10]) and one[17:27] == b"\xaa" * 10
    import zlib

    assert int.from_bytes(one[-4:], "big") == zlib.crc32(one[:-4])
    # each further record of a known format costs its 4..5 header bytes, never more than 12
    many = [Record("wiener/1", 16000 + i, b"\x01" * 100) for i in range(20)]
    per_record = (len(encode_block(many)) - len(encode_block(many[:1]))) / 19 - 100
    assert per_record <= 6


def test_block_damage_loses_that_block_only():
    block = encode_block(RECS)
    mixed = encode_block(RECS[:1]) + block + encode_block(RECS[1:])
    assert scan_blocks(mixed) == (RECS[:1] + RECS + RECS[1:], 0)
    for bit in range(0, len(block) * 8, 7):
        bad = bytearray(mixed)
        bad[len(encode_block(RECS[:1])) + bit // 8] ^= 1 << (bit % 8)
        recs, n_bad = scan_blocks(bytes(bad))
        assert recs == RECS[:1] + RECS[1:] and n_bad >= 1, bit


def test_record_overhead_bytes_reports_the_unit_and_the_block():
    from genpost.sideinfo import record_overhead_bytes

    alone = len(encode_records([Record("wiener/1", 300, b"", count=2)]))  # 2-byte frame index, a run
    assert record_overhead_bytes("wiener/1", "sidecar") == len(encode_block([Record("wiener/1", 300, b"")])) + 1  # a block
    assert record_overhead_bytes("wiener/1", "sei") == alone + 25 and record_overhead_bytes("wiener/1", "track") == alone + 8
    assert record_overhead_bytes("other/1", "sei") == alone + 25 + 1 + len("other/1")  # escaped id


@pytest.mark.parametrize("size", [10, 300, 600])
def test_a_first_sei_of_256_to_511_bytes_does_not_look_like_annex_b(size):
    """A length field 00 00 01 xx opening a length-prefixed packet makes FFmpeg's hevc_mp4toannexb pass the
    packet through as Annex-B (an undecodable raw .265): an AUD goes first then, and strip removes it."""
    slice_ = bytes([19 << 1, 1]) + b"\xaf" * 50
    pkt = len(slice_).to_bytes(4, "big") + slice_
    new = insert_nal(pkt, sei_nal("hevc", [Record("wiener/2", 0, b"\x01" * size, 1)]), "hevc")
    assert new[:3] != b"\x00\x00\x01"
    assert extract_records(new, "hevc")[0][0].payload == b"\x01" * size
    assert strip_records_nal(new, "hevc") == pkt
