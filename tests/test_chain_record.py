"""The chain declaration record (``genpost/chain``, docs/bitstream.md): the record carriages declare the chain
at every random-access point, so `enhance` with no --plugin runs a default-mode plugin whose frames carry no
record (issue 16). Payload round trip and fuzz, and real x265 streams with small in-process plugins."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from conftest import CARPHONE, decode_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from genpost import PostProcessor, cli, media, sideinfo
from genpost.eval import measure
from genpost.jobs import pipeline
from genpost.plugins import installed
from genpost.runner import declared
from genpost.runner.loop import FrameAnalyzer
from genpost.sideinfo.declare import PluginDeclaration

FPS = Fraction(30000, 1001)
FRAMES = 12
KEYINT = 4
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _plus(frame, n: int):
    y = np.minimum(frame.y.astype(np.int32) + n, frame.max_value).astype(frame.dtype)
    return frame.with_planes(y, frame.u, frame.v)


class _Lift(PostProcessor):
    """A default mode and no record ever (the encoder chose the default mode on every frame): +1 luma."""

    name, version, api_version, side_info = "test-lift", "1.0", 1, "test-lift/1"
    default_mode = True
    lift = 1  # what the default mode adds to the luma

    def analyze(self, source, decoded, ctx):
        return b""

    def restore(self, decoded, payload, ctx):
        if payload is None and not self.lift:
            return decoded
        return _plus(decoded, self.lift if payload is None else payload[0])


class _Idle(_Lift):
    """A default mode that leaves frames as decoded under its options (as gan-enhance's strength 0)."""

    name, side_info = "test-idle", "test-idle/1"
    lift = 0


class _Mark(PostProcessor):
    """No default mode; a record on even frames: +2 luma there."""

    name, version, api_version, side_info = "test-mark", "1.0", 1, "test-mark/1"
    default_mode = False

    def analyze(self, source, decoded, ctx):
        return b"\x02" if decoded.index % 2 == 0 else b""

    def restore(self, decoded, payload, ctx):
        return decoded if payload is None else _plus(decoded, payload[0])



@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("chainclip") / "clip.y4m"
    measure.trim_to(CARPHONE, path, FRAMES)
    return path


def _encode(clip, out, plugins, carriage="sei", options=None):
    # closed GOPs: a cut at a keyframe then decodes every picture after it (no leading pictures to drop)
    x265 = f"log-level=error:info=0:repeat-headers=1:keyint={KEYINT}:open-gop=0"
    settings_ = media.EncoderSettings(qp=37, preset="ultrafast", keyint=KEYINT, extra={"x265-params": x265})
    return pipeline.encode(clip, out, settings_, plugins=plugins, carriage=carriage, options=options)


def _enhance(path, out, plugins=None):
    report = pipeline.enhance(path, out, media.EncoderSettings(codec="y4m"), plugins=plugins, fps=FPS)
    return report, decode_all(out)


# ---------------------------------------------------------------- the payload


def _decl(name, version="1.0.0", fmt="", sha=(), options=None):
    return PluginDeclaration(name, version, fmt, tuple(sha), dict(options or {}))


def test_round_trip_and_size():
    gan = _decl("gan-enhance", "1.0.0", "gan-enhance/1", ["ab12cd34" + "0" * 56])
    one = sideinfo.encode_chain([gan])
    assert len(one) == 26  # 2 + name 12 + version 6 + format code 1 + tag 4 + options 1
    got = sideinfo.decode_chain(one)
    assert got is not None and [(d.name, d.version, d.side_info, d.weights_tag, d.options) for d in got] == [
        ("gan-enhance", "1.0.0", "gan-enhance/1", bytes.fromhex("ab12cd34"), {})
    ]
    two = sideinfo.encode_chain([_decl("wiener", "2.2", "wiener/1"), gan])
    assert len(two) == 43
    third = _decl("acme-sharpen", "3", "acme-sharpen/3", options={"strength": "0.5", "mode": "äöü"})
    bare = _decl("blind", "", "")  # no side info, no version, no weights
    got = sideinfo.decode_chain(sideinfo.encode_chain([third, bare]))
    assert got is not None
    assert [(d.name, d.version, d.side_info, d.weights_tag, d.options) for d in got] == [
        ("acme-sharpen", "3", "acme-sharpen/3", bytes(4), {"mode": "äöü", "strength": "0.5"}),
        ("blind", "", "", bytes(4), {}),
    ]
    # the record around it: code 11, one byte
    assert sideinfo.encode_records([sideinfo.Record(sideinfo.CHAIN_FORMAT, 0, one)])[1] == 11


@pytest.mark.parametrize(
    "bad",
    [[], [_decl("x")] * 17, [_decl("bad name")], [_decl("x", "v" * 33)], [_decl("x", options={"k": "v" * 256})],
     [_decl("x", options={f"k{i}": "v" for i in range(33)})], [_decl("x", options={"bad key": "v"})]],
)  # fmt: skip
def test_writer_refuses_what_a_reader_would(bad):
    with pytest.raises(ValueError):
        sideinfo.encode_chain(bad)


@FUZZ
@given(st.binary(max_size=200))
def test_reader_never_raises_on_garbage(buf):
    got = sideinfo.decode_chain(buf)
    assert got is None or 1 <= len(got) <= 16


@FUZZ
@given(st.data())
def test_damage_is_refused_or_a_whole_chain(data):
    payload = sideinfo.encode_chain([_decl("wiener", "2.2", "wiener/1"), _decl("gan-enhance", options={"adapt": "off"})])
    cut = data.draw(st.integers(0, len(payload) - 1))
    assert sideinfo.decode_chain(payload[:cut]) is None  # every truncation
    assert sideinfo.decode_chain(payload + data.draw(st.binary(min_size=1, max_size=4))) is None  # trailing bytes
    pos = data.draw(st.integers(0, len(payload) - 1))
    flipped = bytearray(payload)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    got = sideinfo.decode_chain(bytes(flipped))
    assert got is None or all(isinstance(d, PluginDeclaration) for d in got)
    found = sideinfo.stream_chain([sideinfo.Record(sideinfo.CHAIN_FORMAT, 0, bytes(flipped))])
    assert found.copies == 1 and found.malformed == (got is None)


def test_when_the_encoder_declares_the_chain():
    """Only where records alone would lose the encoder's choice: a default-mode plugin with a frame
    without a record, or more than one plugin changing frames (their order). A wiener-only stream, or a
    chain whose encoder used only wiener, stays as it was."""
    lift, mark = _Lift(), _Mark()
    wiener = pipeline.load_postprocessors(["wiener"])[0]
    rec = [sideinfo.Record("test-lift/1", 0, b"\x01", 4)]

    def declares(chain, records):
        return declared.ChainSignalling(chain, records, {}, 176, 144, 4).declares_chain

    assert declares([lift], []) and declares([lift], [sideinfo.Record("test-lift/1", 0, b"\x01", 3)])  # frame 3
    assert not declares([lift], rec) and not declares([mark], []) and not declares([wiener], [])
    # several plugins: declared where two of them change frames (their order), not for one that sends nothing
    mark_rec = [sideinfo.Record("test-mark/1", 0, b"\x01", 4)]
    wiener_rec = [sideinfo.Record("wiener/1", 0, b"\x01", 4)]
    assert declares([wiener, mark], wiener_rec + mark_rec) and declares([mark, lift], rec + mark_rec)
    assert not declares([wiener, mark], []) and not declares([mark, lift], rec) and not declares([wiener, mark], wiener_rec)
    # the encoder's analysis says whose default mode acted: an idle one needs no declaration
    assert not declared.ChainSignalling([lift], [], {}, 176, 144, 4, default_acts=set()).declares_chain
    assert declared.ChainSignalling([lift], [], {}, 176, 144, 4, default_acts={"test-lift"}).declares_chain


def test_a_default_mode_that_changes_nothing_is_not_declared(clip, tmp_path):
    """A default-mode plugin that chose its default mode everywhere, where that mode leaves the frames as
    decoded: the stream gets no chain record (it would be bytes for nothing: worse than the base)."""
    with installed(_Idle):
        report = _encode(clip, tmp_path / "idle.mkv", ["test-idle"], "sei")
    assert report.records == {}


def test_mismatch_is_reported_like_nnpfc():
    with installed(_Lift):
        found = sideinfo.StreamChain(
            plugins=[PluginDeclaration("test-lift", "0.9", "test-lift/1", (), {"k": "v"}, None, b"\x01\x02\x03\x04")]
        )
        plan = declared.chain_plan(found)
    assert plan.names == plan.declared == ["test-lift"] and plan.options == {"test-lift.k": "v"} and plan.by == "chain"
    assert any("test-lift 0.9; installed is 1.0" in w for w in plan.warnings)
    assert any("weights" in w for w in plan.warnings)
    assert plan.active("test-lift", 12345)


# ---------------------------------------------------------------- streams


@pytest.mark.parametrize("carriage, ext", [("sei", ".mkv"), ("track", ".mkv"), ("sidecar", ".mkv"), ("sei", ".265")])
def test_default_mode_without_records_still_runs(clip, tmp_path, carriage, ext):
    """Issue 16: `encode --plugin P` where P chose its default mode everywhere (no record), then `enhance`
    with no --plugin runs P (before the chain record it ran nothing)."""
    coded = tmp_path / f"coded{ext}"
    with installed(_Lift):
        report = _encode(clip, coded, ["test-lift"], carriage)
        assert report.records == {sideinfo.CHAIN_FORMAT: FRAMES // KEYINT}  # one per keyframe, no plugin record
        enh, frames = _enhance(coded, tmp_path / "out.y4m")
    assert enh.plugins == ["test-lift"] and enh.per_plugin["test-lift"].frames == FRAMES
    assert enh.per_plugin["test-lift"].with_side_info == 0 and enh.side_info["declared"]["by"] == "chain"
    assert enh.side_info["chain"]["copies"] == FRAMES // KEYINT and enh.side_info["chain"]["malformed"] == 0
    base = decode_all(coded, FPS)
    assert len(frames) == FRAMES and all(np.array_equal(f.y, _plus(b, 1).y) for f, b in zip(frames, base))
    info = pipeline.inspect(coded, FPS)
    assert info["side_info"]["chain"]["plugins"] == [
        {"name": "test-lift", "version": "1.0", "format": "test-lift/1", "weights_tag": "00000000", "options": {}}
    ]


def test_chain_runs_in_its_order_with_its_options(clip, tmp_path, monkeypatch):
    # these plugins send what the test needs, not what pays: the encoder must not keep test-mark quiet
    monkeypatch.setattr(FrameAnalyzer, "joint", False)
    coded = tmp_path / "two.mkv"
    with installed(_Lift, _Mark):
        report = _encode(clip, coded, ["test-mark", "test-lift"], options={"test-lift.gain": "1"})
        assert report.records["test-mark/1"] == FRAMES // 2
        enh, frames = _enhance(coded, tmp_path / "out.y4m")
    assert enh.plugins == ["test-mark", "test-lift"] and enh.side_info["declared"]["chain"] == ["test-mark", "test-lift"]
    base = decode_all(coded, FPS)
    assert all(np.array_equal(f.y, _plus(b, 3 if i % 2 == 0 else 1).y) for i, (f, b) in enumerate(zip(frames, base)))
    res = CliRunner().invoke(cli.app, ["inspect", str(coded), "--json"])
    assert res.exit_code == 0, res.output
    chain = json.loads(res.stdout)["side_info"]["chain"]
    assert [p["name"] for p in chain["plugins"]] == ["test-mark", "test-lift"]
    assert chain["plugins"][1]["options"] == {"gain": "1"}


def test_unknown_plugin_warns_and_is_skipped(clip, tmp_path):
    coded = tmp_path / "gone.mkv"
    with installed(_Lift, _Mark):
        _encode(clip, coded, ["test-lift", "test-mark"])
    with installed(_Lift):  # test-mark is not installed here
        enh, frames = _enhance(coded, tmp_path / "out.y4m")
    assert enh.plugins == ["test-lift"] and enh.side_info["declared"]["unknown"] == ["test-mark"]
    assert sum("test-mark" in w and "skipped" in w for w in enh.warnings) == 1
    assert not any("found but no installed plugin" in w for w in enh.warnings)  # not reported twice
    base = decode_all(coded, FPS)
    assert all(np.array_equal(f.y, _plus(b, 1).y) for f, b in zip(frames, base))


@pytest.fixture(scope="module")
def two_265(clip, tmp_path_factory):
    """[test-lift, test-mark] in SEI in a raw .265 stream, a keyframe every 4 frames."""
    out = tmp_path_factory.mktemp("two") / "two.265"
    with installed(_Lift, _Mark):
        _encode(clip, out, ["test-lift", "test-mark"])
    return out


def _rewrite(src, dst, change):
    """``src`` with each access unit's records replaced by ``change(records)``."""
    with media.InputFile(src) as inp:
        units = inp.packet_frames()
    out = bytearray()
    for data, _, _ in units:
        records, bad = sideinfo.extract_records(data, "hevc")
        assert bad == 0
        plain = sideinfo.strip_records_nal(data, "hevc")
        records = change(records)
        out += sideinfo.insert_nal(plain, sideinfo.sei_nal("hevc", records), "hevc") if records else plain
    dst.write_bytes(bytes(out))
    return units


def test_damaged_declaration_falls_back_to_the_records_and_is_counted(two_265, tmp_path):
    def damage(records):
        return [
            r if r.format_id != sideinfo.CHAIN_FORMAT else sideinfo.Record(r.format_id, r.frame_index, r.payload[:-1])
            for r in records
        ]

    bad = tmp_path / "bad.265"
    _rewrite(two_265, bad, damage)
    with installed(_Lift, _Mark):
        enh, frames = _enhance(bad, tmp_path / "out.y4m")
    assert enh.side_info["chain"]["malformed"] == enh.side_info["chain"]["copies"] == FRAMES // KEYINT
    assert enh.plugins == ["test-mark"] and "declared" not in enh.side_info  # what the records name
    assert any("chain declaration is damaged" in w for w in enh.warnings)
    base = decode_all(bad, FPS)
    assert all(np.array_equal(f.y, _plus(b, 2).y if i % 2 == 0 else b.y) for i, (f, b) in enumerate(zip(frames, base)))


def test_one_damaged_copy_is_counted_the_next_declares(two_265, tmp_path):
    seen = []

    def damage_first(records):
        out = []
        for r in records:
            if r.format_id == sideinfo.CHAIN_FORMAT and not seen:
                seen.append(r)
                r = sideinfo.Record(r.format_id, r.frame_index, b"\x01\x00")
            out.append(r)
        return out

    bad = tmp_path / "first.265"
    _rewrite(two_265, bad, damage_first)
    with installed(_Lift, _Mark):
        enh, _ = _enhance(bad, tmp_path / "out.y4m")
    assert enh.side_info["chain"]["malformed"] == 1 and enh.plugins == ["test-lift", "test-mark"]


def test_random_access_into_the_middle(two_265, tmp_path):
    with media.InputFile(two_265) as inp:
        units = inp.packet_frames()
    keys = [k for k, (_, _, key) in enumerate(units) if key]
    start = keys[2]  # the third random-access point
    headers = b"".join(
        b"\x00\x00\x00\x01" + n for n in units[0][0].split(b"\x00\x00\x00\x01")[1:] if (n[0] >> 1) & 0x3F in (32, 33, 34)
    )
    cut = tmp_path / "cut.265"
    cut.write_bytes(headers + b"".join(d for d, _, _ in units[start:]))
    with installed(_Lift, _Mark):
        enh, frames = _enhance(cut, tmp_path / "cut.y4m")
        _, full = _enhance(two_265, tmp_path / "full.y4m")
    assert enh.plugins == ["test-lift", "test-mark"] and enh.side_info["declared"]["by"] == "chain"
    first = units[start][1]
    assert first == 2 * KEYINT and len(frames) == FRAMES - first
    assert all(np.array_equal(a.y, full[first + i].y) for i, a in enumerate(frames))


def test_plugin_forces(two_265, tmp_path):
    with installed(_Lift, _Mark):
        enh, _ = _enhance(two_265, tmp_path / "forced.y4m", ["test-mark"])
    assert enh.plugins == ["test-mark"] and "declared" not in enh.side_info


@pytest.mark.parametrize("carriage", ["sei", "sidecar"])
def test_encode_with_base_declares_the_chain_too(clip, tmp_path, carriage):
    from genpost.jobs.encode_base import encode_with_base

    base, coded = tmp_path / "base.265", tmp_path / "coded.265"
    _encode(clip, base, [])
    with installed(_Lift):
        report = encode_with_base(clip, base, coded, plugins=["test-lift"], carriage=carriage, fps=FPS)
        assert report.records == {sideinfo.CHAIN_FORMAT: FRAMES // KEYINT}
        enh, _ = _enhance(coded, tmp_path / "out.y4m")
    assert enh.plugins == ["test-lift"] and enh.per_plugin["test-lift"].frames == FRAMES
