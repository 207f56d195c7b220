"""H.274 NNPFC / NNPFA SEI: bit-exact against VTM 23.13's own streams, HEVC and VVC NAL units, damage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genpost import cli
from genpost.sideinfo import (
    Nnpfa,
    Nnpfc,
    NnpfcProperties,
    nnpf_messages,
    prefix_sei_messages,
    read_nnpfa,
    read_nnpfc,
    sei_nal_messages,
    write_nnpfa,
    write_nnpfc,
)
from genpost.sideinfo.bits import BitReader, BitsError, BitWriter

NNPF = Path(__file__).parent / "data" / "nnpf"
KNOWN = NNPF / "vtm_nnpfc_known.266"
UNKNOWN = NNPF / "vtm_nnpfc_unknown.266"


def _messages(path: Path, ptype: int) -> list[bytes]:
    return [p for t, p, _ in prefix_sei_messages(path.read_bytes(), "vvc") if t == ptype]


def test_reads_vtm_nnpfc_fields():
    c = read_nnpfc(_messages(KNOWN, 210)[0])
    assert (c.id, c.mode_idc, c.purpose, c.base_flag) == (5, 1, 1, True)
    assert c.uri_tag == "tag:genpost.example,2026:postprocessor/1"
    assert c.uri == "genpost:postprocessor/wiener?version=1.0&format=wiener/1"
    p = c.properties
    assert (p.inp_format_idc, p.inp_order_idc, p.inp_tensor_luma_bitdepth_minus8, p.out_order_idc) == (1, 3, 2, 3)
    assert (p.overlap, p.patch_width_minus1, p.patch_height_minus1, p.padding_type) == (4, 63, 31, 0)
    assert (p.parameter_type_idc, p.log2_parameter_bit_length_minus3, p.num_parameters_idc) == (1, 2, 5)
    assert (p.num_kmac_operations_idc, p.total_kilobyte_size) == (3, 210)


def test_writer_is_bit_exact_with_vtm():
    raw = _messages(KNOWN, 210)[0]
    assert write_nnpfc(read_nnpfc(raw)) == raw


def test_reads_vtm_nnpfa_with_persistence():
    raw = _messages(UNKNOWN, 211)[0]
    a = read_nnpfa(raw)
    assert (a.target_id, a.cancel, a.persistence, a.target_base_flag) == (3, False, True, True)
    assert write_nnpfa(a) == raw  # bit-exact with VTM's writer
    raw = _messages(KNOWN, 211)[0]
    assert write_nnpfa(read_nnpfa(raw)) == raw


@pytest.mark.parametrize("codec", ["hevc", "vvc"])
def test_nal_round_trip(codec):
    c = Nnpfc(id=513, uri_tag="tag:x,2026:y", uri="genpost:postprocessor/a?b=c", properties=NnpfcProperties(overlap=8, patch_width_minus1=255))
    a = Nnpfa(target_id=513, persistence=True, no_foll_clvs_flag=True)
    nal = sei_nal_messages(codec, [(210, write_nnpfc(c)), (211, write_nnpfa(a)), (211, write_nnpfa(Nnpfa(2, cancel=True)))])
    assert nal[:2] == ({"hevc": bytes([39 << 1, 1]), "vvc": bytes([0, (23 << 3) | 1])}[codec])
    found = nnpf_messages(prefix_sei_messages(b"\x00\x00\x00\x01" + nal, codec))
    assert found.malformed == 0
    assert found.nnpfc == [c]
    assert found.nnpfa == [a, Nnpfa(2, cancel=True)]


def test_damaged_messages_are_counted_not_raised():
    raw = _messages(KNOWN, 210)[0]
    good_a = write_nnpfa(Nnpfa(1))
    msgs = [(210, raw[: len(raw) // 2], False), (210, b"\xff" * 12, False), (211, b"", False), (211, good_a, True), (211, good_a, False)]
    found = nnpf_messages(msgs)
    assert found.malformed == 4 and found.nnpfc == [] and found.nnpfa == [Nnpfa(1)]


def test_writer_refuses_what_it_cannot_write():
    with pytest.raises(ValueError):
        write_nnpfc(Nnpfc(id=300, uri="x"))  # reserved id
    with pytest.raises(ValueError):
        write_nnpfc(Nnpfc(id=1, purpose=0x04))  # resolution upsampling needs syntax genpost does not write
    with pytest.raises(ValueError):
        BitWriter().string("a\x00b")


def test_bits_exp_golomb():
    w = BitWriter()
    for v in (0, 1, 2, 254, 255, 2**31):
        w.ue(v)
    for v in (0, 1, -1, 7, -8):
        w.se(v)
    r = BitReader(w.payload())
    assert [r.ue() for _ in range(6)] == [0, 1, 2, 254, 255, 2**31]
    assert [r.se() for _ in range(5)] == [0, 1, -1, 7, -8]
    assert not r.more_data()
    with pytest.raises(BitsError):
        BitReader(b"\x00\x00\x00\x00\x00").ue()


def test_inspect_lists_vtm_streams():
    res = CliRunner().invoke(cli.app, ["inspect", str(KNOWN), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert [(c["id"], c["mode_idc"], c["purpose"], c["base_flag"]) for c in info["nnpfc"]] == [(5, 1, 1, True)]
    assert info["nnpfc"][0]["uri"].startswith("genpost:postprocessor/wiener")
    assert info["nnpfc"][0]["num_kmac_operations_idc"] == 3
    assert [(a["frame"], a["target_id"], a["cancel"], a["persistence"]) for a in info["nnpfa"]] == [(f, 5, False, False) for f in range(3)]
    res = CliRunner().invoke(cli.app, ["inspect", str(UNKNOWN), "--json"])
    info = json.loads(res.output)
    assert info["nnpfc"][0]["uri"] == "https://example.org/unknown-filter.onnx"
    assert [a["persistence"] for a in info["nnpfa"]] == [True, True, True]
