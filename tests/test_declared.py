"""The declared chain (--carriage nnpfc, encode --base, enhance without --plugin): real x265 and VTM streams."""

from __future__ import annotations

import hashlib
import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import CARPHONE, DATA, SEND_OFTEN, decode_all
from typer.testing import CliRunner

from genpost import cli, media, sideinfo
from genpost.jobs import pipeline
from genpost.runner import declared

VTM = Path(__file__).resolve().parents[2] / "shared" / "vtm" / "bin" / "DecoderApp"
NNPF = DATA / "nnpf"
FPS = Fraction(30000, 1001)


def _sse(a, b) -> float:
    return float(sum(((x.astype(np.float64) - y) ** 2).sum() for x, y in zip(a.planes, b.planes)))


@pytest.fixture(scope="module")
def plain_265(tmp_path_factory) -> Path:
    """carphone as a raw HEVC base with a keyframe every 8 frames, no side info."""
    out = tmp_path_factory.mktemp("base") / "base.265"
    pipeline.encode(CARPHONE, out, media.EncoderSettings(qp=37, preset="fast", keyint=8), plugins=[], carriage="sei")
    return out


@pytest.fixture(scope="module")
def nnpfc_265(plain_265, tmp_path_factory) -> Path:
    from genpost.jobs.encode_base import encode_with_base

    out = tmp_path_factory.mktemp("nnpfc") / "wiener.265"
    encode_with_base(CARPHONE, plain_265, out, plugins=["wiener"], carriage="nnpfc", qp=37, fps=FPS, options=SEND_OFTEN)
    return out


def _enhance(path, tmp_path, name, plugins=None):
    out = tmp_path / name
    report = pipeline.enhance(path, out, media.EncoderSettings(codec="y4m"), plugins=plugins, fps=FPS)
    return report, decode_all(out)


def test_base_packets_unchanged_and_chain_declared(plain_265, nnpfc_265):
    with media.InputFile(plain_265) as a, media.InputFile(nnpfc_265) as b:
        base = [d for d, _, _ in a.packet_frames()]
        units = b.packet_frames()
    assert [sideinfo.strip_records_nal(_strip_nnpf(d), "hevc") for d, _, _ in units] == base
    info = pipeline.inspect(nnpfc_265, FPS)
    assert len(info["nnpfc"]) == 1 and info["nnpfc"][0]["uri"].startswith("genpost:postprocessor/wiener?version=")
    assert info["side_info"]["nnpf"]["messages"]["nnpfc"] == 5  # frames 0, 8, 16, 24, 32
    records = {r for r in info["side_info"]["formats"]}
    assert "wiener/1" in records and records <= {"wiener/1", "wiener/1+update"}  # + wiener's period sets
    assert sorted(a["frame"] for a in info["nnpfa"]) == list(range(33))  # SEND_OFTEN: a record on every frame


def _strip_nnpf(data: bytes) -> bytes:
    """A packet without the NNPFC/NNPFA messages (records are left for strip_records_nal)."""
    msgs = list(sideinfo.prefix_sei_messages(data, "hevc"))
    if not any(t in (210, 211) for t, _, _ in msgs):
        return data
    plain = sideinfo.strip_records_nal(data, "hevc")  # drops our NAL when it held records
    rest = [(t, p) for t, p, _ in sideinfo.prefix_sei_messages(plain, "hevc") if t not in (210, 211)]
    assert not rest
    nals = plain.split(b"\x00\x00\x00\x01")
    return b"\x00\x00\x00\x01".join(n for n in nals if not (n and (n[0] >> 1) & 0x3F == 39))


def test_enhance_runs_the_declared_chain(nnpfc_265, tmp_path):
    report, frames = _enhance(nnpfc_265, tmp_path, "declared.y4m")
    assert report.plugins == ["wiener"] and report.per_plugin["wiener"].with_side_info == 33
    forced, frames_forced = _enhance(nnpfc_265, tmp_path, "forced.y4m", ["wiener"])
    assert all(np.array_equal(a.y, b.y) for a, b in zip(frames, frames_forced))
    base = decode_all(nnpfc_265, FPS)
    source = decode_all(CARPHONE)
    assert sum(map(_sse, source, frames)) < sum(map(_sse, source, base))


def test_encoder_chose_off_is_explicit(plain_265, tmp_path):
    from genpost.jobs.encode_base import encode_with_base

    out = tmp_path / "off.265"
    encode_with_base(CARPHONE, plain_265, out, plugins=["wiener"], carriage="nnpfc", qp=37, fps=FPS,
                     options={"wiener.lambda_scale": "1e6"})
    info = pipeline.inspect(out, FPS)
    assert info["nnpfc"] and info["nnpfa"] == []  # declared, never activated
    report, _ = _enhance(out, tmp_path, "off.y4m")
    assert report.plugins == [] and any("chose off" in w for w in report.warnings)


def test_random_access_into_the_middle(nnpfc_265, tmp_path):
    with media.InputFile(nnpfc_265) as inp:
        units = inp.packet_frames()
    keys = [k for k, (_, f, key) in enumerate(units) if key]
    start = keys[2]  # the third random-access point
    headers = b"".join(b"\x00\x00\x00\x01" + n for n in units[0][0].split(b"\x00\x00\x00\x01")[1:] if (n[0] >> 1) & 0x3F in (32, 33, 34))
    cut = tmp_path / "cut.265"
    cut.write_bytes(headers + b"".join(d for d, _, _ in units[start:]))
    report, frames = _enhance(cut, tmp_path, "cut.y4m")
    assert report.plugins == ["wiener"]
    _, full = _enhance(nnpfc_265, tmp_path, "full.y4m")
    first = units[start][1]
    assert len(frames) >= 8 and report.per_plugin["wiener"].with_side_info == len(frames)
    assert all(np.array_equal(a.y, full[first + i].y) for i, a in enumerate(frames))


def test_damaged_nnpfc_and_nnpfa_fall_back_and_are_counted(plain_265, tmp_path):
    records = pipeline.analyze_stream(CARPHONE, plain_265, ["wiener"], qp=37, carriage="nnpfc", fps=FPS, options=SEND_OFTEN)
    chain = pipeline.load_postprocessors(["wiener"])
    signalling = declared.ChainSignalling(chain, records, SEND_OFTEN, 176, 144)
    by_frame: dict[int, list] = {}  # every record of a frame: a period's set and its first frame's payload share one
    for r in records:
        by_frame.setdefault(r.frame_index, []).append(r)
    with media.InputFile(plain_265) as inp:
        units = inp.packet_frames()
    out = bytearray()
    for k, (data, frame, key) in enumerate(units):
        msgs = signalling.messages(frame, key or k == 0)
        if k == 0:  # the first declaration truncated: the next keyframe's declares the chain
            msgs = [(t, p[: len(p) // 2]) if t == 210 else (t, p) for t, p in msgs]
        if frame in (3, 12):  # garbage activation: those frames fall back to the base
            msgs = [(t, b"\x00\x00\x00\x00\x00" if t == 211 else p) for t, p in msgs]
        msgs.append(sideinfo.records_message(by_frame.get(frame, [])))
        out += sideinfo.insert_nal(data, sideinfo.sei_nal_messages("hevc", msgs), "hevc")
    bad = tmp_path / "bad.265"
    bad.write_bytes(bytes(out))
    report, frames = _enhance(bad, tmp_path, "bad.y4m")
    assert report.side_info["nnpf"]["malformed"] == 3
    assert report.plugins == ["wiener"] and report.per_plugin["wiener"].off == 2  # frames 3 and 12
    base = decode_all(bad, FPS)
    assert np.array_equal(frames[12].y, base[12].y) and np.array_equal(frames[3].y, base[3].y)
    assert not np.array_equal(frames[13].y, base[13].y)


def test_vtm_reference_streams(tmp_path):
    report, frames = _enhance(NNPF / "vtm_nnpfc_known.266", tmp_path, "known.y4m")
    assert report.side_info["declared"] == {"chain": ["wiener"], "activated": ["wiener"], "unknown": [], "by": "nnpfc"}
    report, frames = _enhance(NNPF / "vtm_nnpfc_unknown.266", tmp_path, "unknown.y4m")
    assert report.plugins == [] and any("no installed plugin provides it: skipped" in w for w in report.warnings)
    assert report.side_info["declared"]["unknown"] == ["https://example.org/unknown-filter.onnx"]


@pytest.mark.skipif(not VTM.exists(), reason="needs ../shared/vtm (VTM 23.13 DecoderApp), absent in a plain clone")
def test_vtm_decoder_accepts_genpost_nnpfc_vvc(tmp_path):
    base = DATA / "vvc" / "carphone_176x144_29.97_ra_qp42.266"
    manifest = json.loads((DATA / "vvc" / "manifest.json").read_text())
    expected = next(s["decoded_md5_yuv420p10le"] for s in manifest["streams"] if s["file"] == base.name)
    out = tmp_path / "vg.266"
    res = CliRunner().invoke(cli.app, ["encode", str(CARPHONE), "--base", str(base), "-o", str(out), "--plugin", "gan-enhance", "--carriage", "nnpfc", "--qp", "42", "-q"])
    assert res.exit_code == 0, res.output
    yuv, dump = tmp_path / "vg.yuv", tmp_path / "sei.txt"
    run = subprocess.run([str(VTM), "-b", str(out), "-o", str(yuv), "-d", "10", f"--OutputDecodedSEIMessagesFilename={dump}"], capture_output=True)
    assert run.returncode == 0, run.stdout[-2000:]
    assert hashlib.md5(yuv.read_bytes()).hexdigest() == expected
    text = dump.read_text(errors="replace")
    assert text.count("Neural network post-filter activation SEI message") == 2  # persistent, per keyframe
    assert "nnpfa_persistence_flag: 1" in text
    assert "nnpfc_uri: genpost:postprocessor/gan-enhance?version=2.2.0" in text
    assert "nnpfc_num_kmac_operations_idc: 13" in text and "nnpfc_num_parameters_idc: 5" in text
    report, frames = _enhance(out, tmp_path, "vg.y4m")
    assert report.plugins == ["gan-enhance"] and report.per_plugin["gan-enhance"].off == 0
    _, forced = _enhance(out, tmp_path, "forced.y4m", ["gan-enhance"])
    assert all(np.array_equal(a.y, b.y) and np.array_equal(a.v, b.v) for a, b in zip(frames, forced))
    source = [f.replace(y=f.y.astype(np.uint16) << 2, u=f.u.astype(np.uint16) << 2, v=f.v.astype(np.uint16) << 2) for f in decode_all(CARPHONE)]
    plain = decode_all(base, FPS)
    assert sum(map(_sse, source, frames)) <= sum(map(_sse, source, plain))  # the plugin's RD may choose off


def test_base_mismatch_is_a_usage_error(plain_265, tmp_path):
    res = CliRunner().invoke(cli.app, ["encode", str(DATA / "nnpf" / "vtm_nnpfc_known.266"), "--base", str(plain_265), "-o", str(tmp_path / "x.265"), "-q"])
    assert res.exit_code == 2 and "64x64" in res.output
    short = tmp_path / "short.y4m"
    raw = CARPHONE.read_bytes()
    frame = len(b"FRAME\n") + 176 * 144 * 3 // 2
    short.write_bytes(raw[: raw.index(b"FRAME")] + raw[raw.index(b"FRAME") :][: 10 * frame])
    res = CliRunner().invoke(cli.app, ["encode", str(short), "--base", str(plain_265), "-o", str(tmp_path / "y.265"), "-q"])
    assert res.exit_code == 2 and "33 frames but the source has 10" in res.output
    assert not (tmp_path / "y.265").exists()


def test_sidecar_beside_the_input_is_found(tmp_path):
    out = tmp_path / "side.mkv"
    pipeline.encode(CARPHONE, out, media.EncoderSettings(qp=37, preset="fast"), plugins=["wiener"], carriage="sidecar",
                    options=SEND_OFTEN)
    assert Path(str(out) + ".gpsi").is_file()
    report = pipeline.enhance(out, tmp_path / "o.y4m", media.EncoderSettings(codec="y4m"))
    assert report.plugins == ["wiener"] and report.per_plugin["wiener"].with_side_info == 33
    assert pipeline.inspect(out)["sidecar"] == str(out) + ".gpsi"


def test_every_route_runs_the_same_decode_session(nnpfc_265, tmp_path):
    """The FFmpeg route and preview take the chain, activation and options from the same decode session as
    plain enhance (genpost.runner.session): same plugins, same frames, the declaration in the report."""
    pytest.importorskip("ffmpeg")
    from genpost.eval import preview
    from genpost.jobs import chain as chain_mod

    plain, frames = _enhance(nnpfc_265, tmp_path, "plain.y4m")
    steps = chain_mod.Chain(post=["null"])  # as enhance --vf-post null builds it
    out = tmp_path / "route.y4m"
    report = chain_mod.enhance(nnpfc_265, out, steps, cli_profile=chain_mod.OutputProfile(codec="y4m"), plugins=None,
                               sidecar=None, fps=FPS)
    assert report.plugins == plain.plugins == ["wiener"]
    assert report.side_info["declared"] == plain.side_info["declared"] and "nnpf" in report.side_info
    assert all(np.array_equal(a.y, b.y) for a, b in zip(decode_all(out), frames))
    shown = preview.preview(nnpfc_265, tmp_path / "p.png", frame=3, fps=FPS, with_vmaf=False)
    assert [p.split("/")[0] for p in shown["plugins"]] == ["wiener"]
