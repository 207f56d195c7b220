"""Side info under faults, on real streams: a missing, duplicated, misplaced, truncated or malformed record
degrades only its own frame to the base decode, and the counts say so. Plus a hypothesis fuzz of the
readers over mutated real packets (the long run: scripts/fuzz_real_packets.py)."""

from __future__ import annotations

import binascii
import io
import random
import zlib

import numpy as np
import pytest
from conftest import decode_all, v3_crc_matches
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genpost import media, sideinfo
from genpost.jobs import pipeline

from . import corrupt
from .conftest import VTM_RA

FFV1 = media.EncoderSettings(codec="ffv1")


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.planes, b.planes))


@pytest.fixture(scope="module")
def reference(probe_mkv, tmp_path_factory):
    from .conftest import probe_installed

    out = tmp_path_factory.mktemp("sref") / "ref.mkv"
    with probe_installed():
        pipeline.enhance(probe_mkv, out, FFV1)
    return decode_all(probe_mkv), decode_all(out)


def _enhance(path, tmp_path, **kw):
    from .conftest import probe_installed

    out = tmp_path / "out.mkv"
    with probe_installed():
        report = pipeline.enhance(path, out, FFV1, **kw)
    return report, decode_all(out)


def _frame_of(data: bytes) -> int | None:
    records, _ = sideinfo.extract_records(data, "hevc")
    return records[0].frame_index if records else None


def _check(frames, reference, degraded: set[int]):
    base, restored = reference
    assert len(frames) == 33
    for i, f in enumerate(frames):
        assert _same(f, base[i] if i in degraded else restored[i]), i


def test_missing_records_degrade_only_their_frames(probe_mkv, reference, tmp_path):
    bad = tmp_path / "bad.mkv"
    corrupt.rewrite_packets(probe_mkv, bad, lambda i, d: sideinfo.strip_records_nal(d, "hevc") if _frame_of(d) in (3, 9) else d)
    report, frames = _enhance(bad, tmp_path)
    assert report.per_plugin["probe"].with_side_info == 31
    _check(frames, reference, {3, 9})


def test_duplicated_and_misplaced_records_are_still_applied_to_their_own_frame(probe_mkv, reference, tmp_path):
    packets = corrupt.packets(probe_mkv)
    by_frame = {_frame_of(d): sideinfo.extract_records(d, "hevc")[0] for d in packets}

    def change(i, d):
        f = _frame_of(d)
        if f in (10, 11):  # swap: each packet carries the other frame's record
            return sideinfo.insert_nal(sideinfo.strip_records_nal(d, "hevc"), sideinfo.sei_nal("hevc", by_frame[21 - f]), "hevc")
        if f == 6:  # a second copy of frame 5's record, and of its own
            return sideinfo.insert_nal(d, sideinfo.sei_nal("hevc", by_frame[5] + by_frame[6]), "hevc")
        return d

    bad = tmp_path / "bad.mkv"
    corrupt.rewrite_packets(probe_mkv, bad, change)
    report, frames = _enhance(bad, tmp_path)
    assert report.side_info["duplicates"] == 2 and report.side_info["conflicts"] == 0
    _check(frames, reference, set())


def test_truncated_and_flipped_records_are_malformed_and_their_frames_fall_back(probe_mkv, reference, tmp_path):
    def change(i, d):
        f = _frame_of(d)
        at = d.find(sideinfo.GENPOST_UUID)
        if f == 4:  # a byte of the record's payload flipped (its last, before the unit's CRC-16): the CRC catches it
            k = at + 16 + len(sideinfo.encode_records(sideinfo.extract_records(d, "hevc")[0])) - 3
            return d[:k] + bytes([d[k] ^ 0x40]) + d[k + 1 :]
        if f == 12:  # a well-formed SEI whose record is cut 6 bytes short
            from genpost.sideinfo.nal import (
                SEI_USER_DATA_UNREGISTERED,
                _codec,
                _sei_nal_from_messages,
            )

            blob = sideinfo.GENPOST_UUID + sideinfo.encode_records(sideinfo.extract_records(d, "hevc")[0])[:-6]
            nal = _sei_nal_from_messages(_codec("hevc"), [(SEI_USER_DATA_UNREGISTERED, blob)])
            return sideinfo.insert_nal(sideinfo.strip_records_nal(d, "hevc"), nal, "hevc")
        return d

    bad = tmp_path / "bad.mkv"
    corrupt.rewrite_packets(probe_mkv, bad, change)
    report, frames = _enhance(bad, tmp_path)
    assert report.side_info["malformed"] == 2
    _check(frames, reference, {4, 12})


def test_a_unit_of_another_version_is_malformed_and_its_frame_falls_back(probe_mkv, reference, tmp_path):
    """Only record version 3 is read: a unit of another version (a later layout's, or a pre-release one),
    whole and with a matching CRC, counts as malformed and its frames keep the base decode; nothing raises."""

    def change(i, d):
        if _frame_of(d) != 7:
            return d
        unit = sideinfo.encode_records(sideinfo.extract_records(d, "hevc")[0])
        wide = unit[0] & 1
        body = bytes([0x40 | wide]) + unit[1 : -4 if wide else -2]  # version 4
        crc = zlib.crc32(body).to_bytes(4, "big") if wide else binascii.crc_hqx(body, 0xFFFF).to_bytes(2, "big")
        nal = sideinfo.sei_nal_messages("hevc", [(5, sideinfo.GENPOST_UUID + body + crc)])
        return sideinfo.insert_nal(sideinfo.strip_records_nal(d, "hevc"), nal, "hevc")

    bad = tmp_path / "bad.mkv"
    corrupt.rewrite_packets(probe_mkv, bad, change)
    report, frames = _enhance(bad, tmp_path)
    assert report.side_info["malformed"] == 1 and report.per_plugin["probe"].with_side_info == 32
    _check(frames, reference, {7})


def test_sidecar_shuffled_duplicated_and_cut(probe_mkv, reference, tmp_path):
    with media.InputFile(probe_mkv) as inp:
        index = pipeline.collect_side_info(inp)
    records = list(index.records())
    plain = tmp_path / "plain.mkv"  # the same base without SEI: all side info comes from the sidecar
    corrupt.rewrite_packets(probe_mkv, plain, lambda i, d: sideinfo.strip_records_nal(d, "hevc"))
    shuffled = records + records[:5]  # five records twice
    random.Random(7).shuffle(shuffled)
    side = tmp_path / "side.gpsi"
    sideinfo.write_sidecar(side, shuffled)
    side.write_bytes(side.read_bytes()[:-3])  # the last record in the file loses its CRC
    read = shuffled[:-1]
    lost = set() if shuffled[-1] in read else {shuffled[-1].frame_index}
    report, frames = _enhance(plain, tmp_path, sidecar=side)
    assert report.side_info["malformed"] == 1 and report.side_info["duplicates"] == len(read) - len(set(read))
    _check(frames, reference, lost)


# ---------------------------------------------------------------- fuzz over real packets


def real_packets(probe_mkv, probe_265) -> list[tuple[str, bytes]]:
    """(codec, packet) from real streams: x265 in MKV (length-prefixed) and raw (Annex-B) with probe SEI,
    and VTM VVC access units with genpost SEI inserted."""
    out = [("hevc", d) for d in corrupt.packets(probe_mkv)]
    with media.InputFile(probe_265, "30000/1001") as inp:
        out += [("hevc", d) for d, _ in inp.video_packets()]
    with media.InputFile(VTM_RA, 25) as inp:
        for i, (d, _) in enumerate(inp.video_packets()):
            rec = [sideinfo.Record("probe/1", i, bytes([i % 256]) * (i * 7 % 300))]
            try:
                out.append(("vvc", sideinfo.insert_nal(d, sideinfo.sei_nal("vvc", rec), "vvc", aud=True)))
            except ValueError:
                continue  # an access unit without a picture (parameter sets only)
    return out


@pytest.fixture(scope="module")
def corpus(probe_mkv, probe_265):
    return real_packets(probe_mkv, probe_265)


MUTATIONS = corrupt.mutations(max_ops=6)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pick=st.integers(0, 10_000), ops=MUTATIONS)
def test_readers_never_crash_or_invent_records_on_mutated_real_packets(corpus, pick, ops):
    codec, clean = corpus[pick % len(corpus)]
    original, bad = sideinfo.extract_records(clean, codec)
    assert bad == 0
    data = corrupt.mutate(clean, ops)
    records, malformed = sideinfo.extract_records(data, codec)
    assert malformed >= 0
    if not all(r in original for r in records):  # only where a unit's CRC-16 matches (1 in 65536 damages)
        units = [p[16:] for t, p, _ in sideinfo.prefix_sei_messages(data, codec) if t == 5 and p[:16] == sideinfo.GENPOST_UUID]
        assert any(v3_crc_matches(u) for u in units), records
    side = io.BytesIO()
    sideinfo.write_sidecar(side, original)
    sidecar = corrupt.mutate(side.getvalue(), ops)
    records, malformed = sideinfo.read_sidecar(sidecar)
    assert malformed >= 0 and all(r in original for r in records)
    sideinfo.strip_records_nal(data, codec)
