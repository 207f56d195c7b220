"""Everything a broadcaster's file carries survives ``genpost enhance`` (issue 29): chapters, attachments,
container and stream tags, colour and HDR metadata, the pixel aspect, and MPEG-TS data streams (SCTE-35).
Each on a real file made by the ffmpeg binary, read back with PyAV."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import pytest
from conftest import CARPHONE, ffmpeg

from genpost import media
from genpost.jobs.enhance import enhance

ROUTES = ("copy", "libx265")  # packets copied (no plugin), restored frames re-encoded


def _font() -> Path:
    matplotlib = pytest.importorskip("matplotlib")
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "cmr10.ttf"


@pytest.fixture(scope="module")
def broadcast_mkv(tmp_path_factory) -> Path:
    """10-bit HDR10 HEVC (BT.2020, PQ, ST 2086, CLL, SAR 12:11) with French AAC (titled), English SRT, two
    chapters, a container title and a TrueType font attached."""
    folder = tmp_path_factory.mktemp("broadcast")
    srt = folder / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nHello\n\n")
    meta = folder / "chapters.txt"
    meta.write_text(
        ";FFMETADATA1\ntitle=Carphone broadcast\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=150\ntitle=Opening\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=150\nEND=330\ntitle=Call\n"
    )
    hdr = (
        "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:range=limited:"
        "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50):max-cll=1000,400"
    )
    out = folder / "broadcast.mkv"
    ffmpeg(
        "-i", str(CARPHONE), "-f", "lavfi", "-i", "sine=duration=0.4", "-i", str(srt), "-i", str(meta),
        "-map", "0:v", "-map", "1:a", "-map", "2:s", "-map_metadata", "3", "-map_chapters", "3", "-frames:v", "10",
        "-vf", "setsar=12/11", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", hdr, "-pix_fmt", "yuv420p10le",
        "-c:a", "aac", "-c:s", "srt",
        "-metadata:s:v:0", "language=deu", "-metadata:s:v:0", "title=Main picture",
        "-metadata:s:a:0", "language=fra", "-metadata:s:a:0", "title=Commentary", "-metadata:s:s:0", "language=eng",
        "-attach", str(_font()), "-metadata:s:t:0", "mimetype=font/ttf", "-metadata:s:t:0", "filename=cmr10.ttf",
        str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def enhanced(broadcast_mkv, tmp_path_factory) -> dict[str, Path]:
    """``genpost enhance broadcast.mkv`` by each route."""
    folder = tmp_path_factory.mktemp("enhanced")
    outs = {}
    for codec in ROUTES:
        outs[codec] = folder / f"{codec}.mkv"
        settings = media.EncoderSettings(codec=codec, preset="ultrafast")
        enhance(broadcast_mkv, outs[codec], settings, plugins=["none"])
    return outs


def _chapters(path) -> list[tuple[float, float, str]]:
    with av.open(str(path)) as c:
        return [
            (float(ch["start"] * ch["time_base"]), float(ch["end"] * ch["time_base"]), ch["metadata"].get("title", ""))
            for ch in c.chapters()
        ]


@pytest.mark.parametrize("route", ROUTES)
def test_chapters_survive(broadcast_mkv, enhanced, route):
    assert _chapters(broadcast_mkv) == [(0.0, 0.15, "Opening"), (0.15, 0.33, "Call")]
    assert _chapters(enhanced[route]) == _chapters(broadcast_mkv)


@pytest.mark.parametrize("route", ROUTES)
def test_attached_fonts_survive_byte_exact(enhanced, route):
    with av.open(str(enhanced[route])) as c:
        fonts = [s for s in c.streams if s.type == "attachment"]
        assert [(s.metadata.get("filename"), s.mimetype) for s in fonts] == [("cmr10.ttf", "font/ttf")]
        assert fonts[0].data == _font().read_bytes()


@pytest.mark.parametrize("route", ROUTES)
def test_container_title_and_stream_tags_survive(enhanced, route):
    with av.open(str(enhanced[route])) as c:
        assert c.metadata.get("title") == "Carphone broadcast"
        tags = {s.type: (s.metadata.get("language"), s.metadata.get("title")) for s in c.streams if s.type != "attachment"}
    assert tags == {"video": ("deu", "Main picture"), "audio": ("fra", "Commentary"), "subtitle": ("eng", None)}


@pytest.mark.parametrize("route", ROUTES)
def test_colour_hdr_and_pixel_aspect_survive(enhanced, route):
    with av.open(str(enhanced[route])) as c:
        stream = c.streams.video[0]
        frame = next(c.decode(stream))
        assert stream.sample_aspect_ratio == Fraction(12, 11)
    assert (int(frame.color_primaries), int(frame.color_trc), int(frame.colorspace), int(frame.color_range)) == (9, 16, 9, 1)
    entries = [e if hasattr(e, "type") else frame.side_data[e] for e in frame.side_data]  # PyAV 18.1.0 / 18.1.1
    side = {sd.type.name: bytes(sd) for sd in entries}
    light = struct.unpack("<2I", side["CONTENT_LIGHT_LEVEL"][:8])
    assert light == (1000, 400)
    mastering = struct.unpack("<20i2i", side["MASTERING_DISPLAY_METADATA"][:88])
    assert Fraction(mastering[18], mastering[19]) == 1000  # max luminance, cd/m2
    assert Fraction(mastering[0], mastering[1]) == Fraction(34000, 50000)  # red x


def test_an_mp4_output_keeps_chapters_and_title(broadcast_mkv, tmp_path):
    no_subs = tmp_path / "nosubs.mkv"  # (MP4 holds no SRT)
    ffmpeg("-i", str(broadcast_mkv), "-map", "0:v", "-map", "0:a", "-c", "copy", str(no_subs))
    out = tmp_path / "out.mp4"
    enhance(no_subs, out, media.EncoderSettings(codec="copy"), plugins=["none"])
    assert _chapters(out) == _chapters(broadcast_mkv)
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "Carphone broadcast"


def test_what_a_format_cannot_hold_is_named(broadcast_mkv, tmp_path):
    report = enhance(broadcast_mkv, tmp_path / "out.ts", media.EncoderSettings(codec="copy"), plugins=["none"])
    assert "attachment cmr10.ttf dropped: mpegts holds no attachments" in report.warnings
    assert "2 chapters dropped: mpegts holds no chapters" in report.warnings


# ---------------------------------------------------------------- SCTE-35 in MPEG-TS

SCTE_PID = 0x1F0


def _crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def _section(body: bytes) -> bytes:
    return body + struct.pack(">I", _crc32_mpeg(body))


def _splice_null(tier: int) -> bytes:
    """An SCTE-35 splice_info_section holding a splice_null command (tier differs per message)."""
    return _section(bytes([0xFC, 0x30, 0x11, 0, 0, 0, 0, 0, 0, 0, tier >> 4, ((tier & 15) << 4) | 0x0F, 0xFF, 0, 0, 0]))


def _add_scte35(ts: bytes, every: int) -> tuple[bytes, list[bytes]]:
    """FFmpeg's muxers write no SCTE-35 stream (stream_type 0x86); add one as broadcasters do: a PMT entry with
    the CUEI registration and a section every ``every`` video PES."""
    out, sent, starts = [], [], 0
    for i in range(0, len(ts), 188):
        pkt = ts[i : i + 188]
        pid = ((pkt[1] & 0x1F) << 8) | pkt[2]
        if pid == 0x1000 and pkt[1] & 0x40:  # the PMT (FFmpeg's default PID)
            start = 5 + pkt[4]
            length = ((pkt[start + 1] & 0x0F) << 8) | pkt[start + 2]
            body = bytearray(pkt[start : start + 3 + length - 4])
            info = ((body[10] & 0x0F) << 8) | body[11]
            body[10:12] = bytes([0xF0 | ((info + 6) >> 8), (info + 6) & 0xFF])
            body[12 + info : 12 + info] = b"\x05\x04CUEI"
            body += bytes([0x86, 0xE0 | (SCTE_PID >> 8), SCTE_PID & 0xFF, 0xF0, 0x00])
            body[1:3] = bytes([(body[1] & 0xF0) | ((len(body) + 1) >> 8), (len(body) + 1) & 0xFF])
            pkt = pkt[:start] + _section(bytes(body))
            pkt += b"\xff" * (188 - len(pkt))
        out.append(pkt)
        if pid == 0x100 and pkt[1] & 0x40:
            starts += 1
            if starts % every == 2:
                message = _splice_null(len(sent) + 1)
                cell = bytes([0x47, 0x40 | (SCTE_PID >> 8), SCTE_PID & 0xFF, 0x10 | (len(sent) & 15), 0]) + message
                out.append(cell + b"\xff" * (188 - len(cell)))
                sent.append(message)
    return b"".join(out), sent


@pytest.fixture(scope="module")
def scte35_ts(tmp_path_factory) -> tuple[Path, list[bytes]]:
    folder = tmp_path_factory.mktemp("scte35")
    plain = folder / "plain.ts"
    ffmpeg(
        "-i", str(CARPHONE), "-f", "lavfi", "-i", "sine=duration=0.4", "-map", "0:v", "-map", "1:a", "-frames:v", "12",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error", "-c:a", "aac",
        "-metadata:s:a:0", "language=fra", str(plain),
    )  # fmt: skip
    data, sent = _add_scte35(plain.read_bytes(), every=4)
    out = folder / "scte35.ts"
    out.write_bytes(data)
    with av.open(str(out)) as c:
        assert [s.name for s in c.streams if s.type == "data"] == ["scte_35"]  # FFmpeg reads it as SCTE-35
    return out, sent


def _data_packets(path) -> list[tuple[bytes, Fraction]]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == "data"]
        return [(bytes(p), p.pts * p.time_base) for p in c.demux(streams) if p.size]


@pytest.mark.parametrize("route", ROUTES)
def test_scte35_messages_survive_in_mpegts(scte35_ts, tmp_path, route):
    src, sent = scte35_ts
    out = tmp_path / "out.ts"
    report = enhance(src, out, media.EncoderSettings(codec=route, preset="ultrafast"), plugins=["none"])
    assert report.side_info.get("malformed", 0) == 0  # SCTE-35 sections are not read as genpost side info
    before, after = _data_packets(src), _data_packets(out)
    assert [m for m, _ in before] == sent and len(sent) == 3
    assert [m for m, _ in after] == sent  # byte-exact, in order
    # timed as before, relative to the video (the muxer may move the whole file's start)
    with av.open(str(src)) as a, av.open(str(out)) as b:
        v0 = [c.streams.video[0].start_time * c.streams.video[0].time_base for c in (a, b)]
    assert [t - v0[0] for _, t in before] == [t - v0[1] for _, t in after]
    with av.open(str(out)) as c:
        # FFmpeg's MPEG-TS muxer (8.1 in PyAV, 9.0 in the binary) writes SCTE-35 as private PES data
        # (stream_type 0x06), which reads back as bin_data: the messages survive, their stream type does not
        assert [s.name for s in c.streams if s.type == "data"] == ["bin_data"]
        assert [s.language for s in c.streams if s.type == "audio"] == ["fra"]


def test_a_format_without_data_streams_names_the_scte35_it_drops(scte35_ts, tmp_path):
    report = enhance(scte35_ts[0], tmp_path / "out.mkv", media.EncoderSettings(codec="copy"), plugins=["none"])
    assert "data scte_35 dropped: matroska holds no data streams" in report.warnings
