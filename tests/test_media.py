"""Media I/O on real streams: y4m, VTM VVC streams, x265/x264/ffv1/y4m outputs, colour and HDR, passthrough."""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import SEND_OFTEN, VVC, decode_all, ffmpeg

from genpost import media
from genpost.errors import UsageError
from genpost.jobs import pipeline
from genpost.types import ColorInfo, ContentLight, MasteringDisplay, to_bit_depth

MANIFEST = json.loads((VVC / "manifest.json").read_text())


def frame_md5(frame) -> str:
    return hashlib.md5(b"".join(p.tobytes() for p in frame.planes)).hexdigest()


def test_y4m_frames_keep_planes_dtype_and_timing(carphone):
    frames = decode_all(carphone)
    assert len(frames) == 33
    f = frames[5]
    assert (f.y.shape, f.u.shape, f.v.shape) == ((144, 176), (72, 88), (72, 88))
    assert f.y.dtype == np.uint8 and f.bit_depth == 8
    assert [fr.pts for fr in frames] == list(range(33))
    assert f.time_base == Fraction(1001, 30000)
    assert [fr.index for fr in frames] == list(range(33))


@pytest.mark.parametrize("entry", MANIFEST["streams"], ids=lambda e: e["file"])
def test_vtm_streams_decode_bit_exact_and_remux_losslessly(entry, tmp_path):
    path = VVC / entry["file"]
    frames = decode_all(path, fps=entry["fps"])
    assert [frame_md5(f) for f in frames] == entry["frame_md5_yuv420p10le"]
    assert all(f.bit_depth == 10 and f.y.dtype == np.uint16 for f in frames)
    assert [f.pts for f in frames] == list(range(len(frames)))
    out = tmp_path / "lossless.mkv"
    pipeline.enhance(path, out, media.EncoderSettings(codec="ffv1"), plugins=["none"], fps=entry["fps"])
    again = decode_all(out)
    assert [frame_md5(f) for f in again] == entry["frame_md5_yuv420p10le"]
    # Matroska stores milliseconds: timestamps agree to its resolution
    assert all(abs(a.pts * a.time_base - b.pts * b.time_base) <= Fraction(1, 1000) for a, b in zip(again, frames))


def test_raw_stream_without_fps_is_refused_for_timed_output(tmp_path):
    path = VVC / MANIFEST["streams"][0]["file"]
    with pytest.raises(UsageError, match="--fps") as caught:  # bad usage (exit 2), as docs/cli.md says
        pipeline.enhance(path, tmp_path / "x.mkv", media.EncoderSettings(codec="ffv1"), plugins=[])
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("ext", [".mkv", ".mp4", ".ts"])
def test_a_raw_stream_with_nothing_to_restore_is_copied_with_its_frames_times(carphone, tmp_path, ext):
    """A raw x265 stream with B-frames and no side info: enhance copies its packets (no re-encode) and
    times them from --fps in presentation order, so the container shows the very frames at index / fps."""
    raw = tmp_path / "plain.265"
    ffmpeg("-i", str(carphone), "-frames:v", "12", "-c:v", "libx265", "-x265-params", "log-level=error:bframes=3", str(raw))
    out = tmp_path / f"copy{ext}"
    report = pipeline.enhance(raw, out, media.EncoderSettings(), plugins=[], fps=Fraction(25))
    assert report.frames == 12
    copied, decoded = decode_all(out), decode_all(raw, fps=Fraction(25))
    assert [frame_md5(f) for f in copied] == [frame_md5(f) for f in decoded]
    assert [f.pts * f.time_base - copied[0].pts * copied[0].time_base for f in copied] == [Fraction(i, 25) for i in range(12)]


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_ffv1_is_lossless_at_8_and_10_bit(carphone, tmp_path, bit_depth):
    src = [to_bit_depth(f, bit_depth) for f in decode_all(carphone)[:6]]
    out = tmp_path / "ffv1.mkv"
    write(out, src, media.EncoderSettings(codec="ffv1", bit_depth=bit_depth))
    back = decode_all(out)
    assert len(back) == 6
    for a, b in zip(src, back):
        assert b.bit_depth == bit_depth and b.y.dtype == a.y.dtype
        assert all(np.array_equal(x, y) for x, y in zip(a.planes, b.planes))


@pytest.mark.parametrize(
    "codec,ext,bit_depth",
    [("libx265", "mkv", 8), ("libx265", "mp4", 10), ("libx264", "ts", 8), ("y4m", "y4m", 10), ("y4m", "y4m", 8)],
)
def test_encoders_write_decodable_files(carphone, tmp_path, codec, ext, bit_depth):
    src = [to_bit_depth(f, bit_depth) for f in decode_all(carphone)[:8]]
    out = tmp_path / f"out.{ext}"
    write(out, src, media.EncoderSettings(codec=codec, bit_depth=bit_depth, qp=30 if codec != "y4m" else None))
    back = decode_all(out)
    assert len(back) == 8
    assert back[0].bit_depth == bit_depth
    assert max(int(f.y.max()) for f in back) <= (1 << bit_depth) - 1
    if codec == "y4m":
        assert all(np.array_equal(a.y, b.y) for a, b in zip(src, back))
    else:
        mse = np.mean((src[3].y.astype(float) - back[3].y.astype(float)) ** 2) / (1 << (2 * (bit_depth - 8)))
        assert mse < 30  # a real encode of the same picture, not garbage


def test_colour_and_hdr_metadata_round_trip(carphone, tmp_path):
    hdr = ColorInfo(
        primaries=9,
        transfer=16,
        matrix=9,
        range=1,
        mastering=MasteringDisplay(((34000, 16000), (13250, 34500), (7500, 3000)), (15635, 16450), 10000000, 50),
        content_light=ContentLight(1000, 400),
    )
    src = [to_bit_depth(f, 10) for f in decode_all(carphone)[:4]]
    out = tmp_path / "hdr.mkv"
    write(out, src, media.EncoderSettings(codec="libx265", bit_depth=10, qp=30), color=hdr)
    with media.InputFile(out) as inp:
        assert inp.info.color == hdr
    # and through a genpost encode + enhance chain
    enc = tmp_path / "hdr_enc.mp4"
    pipeline.encode(out, enc, media.EncoderSettings(qp=32, bit_depth=10, preset="fast"), plugins=["wiener"], options=SEND_OFTEN)
    enh = tmp_path / "hdr_enh.mkv"
    pipeline.enhance(enc, enh, media.EncoderSettings(codec="libx265", preset="fast"))
    with media.InputFile(enh) as inp:
        assert inp.info.color == hdr
        assert inp.info.bit_depth == 10


def test_audio_subtitles_and_languages_pass_through_bit_exact(av_source, tmp_path):
    enc = tmp_path / "enc.mkv"
    pipeline.encode(av_source, enc, media.EncoderSettings(qp=37, preset="fast"), plugins=["wiener"], options=SEND_OFTEN)
    enh = tmp_path / "enh.mkv"
    pipeline.enhance(enc, enh, media.EncoderSettings(codec="ffv1"), plugins=["wiener"])
    for path in (enc, enh):
        assert other_packets(path) == other_packets(av_source)
        with av.open(str(path)) as c:
            langs = {s.type: s.metadata.get("language") for s in c.streams}
        assert langs == {"video": "deu", "audio": "fra", "subtitle": "eng"}
    with av.open(str(enh)) as c:  # provenance tag (Matroska upper-cases tag names)
        assert {k.lower(): v for k, v in c.metadata.items()}["genpost_postprocessors"] == "wiener/2.4"


def test_variable_frame_rate_timestamps_are_kept(carphone, tmp_path):
    frames = decode_all(carphone)[:12]
    tb = Fraction(1, 1000)
    pts = [0, 33, 70, 100, 180, 200, 233, 300, 333, 400, 480, 500]
    vfr = [f.replace(pts=p, time_base=tb) for f, p in zip(frames, pts)]
    src = tmp_path / "vfr.mkv"
    write(src, vfr, media.EncoderSettings(codec="ffv1"), time_base=tb)
    enc = tmp_path / "vfr_enc.mp4"
    pipeline.encode(src, enc, media.EncoderSettings(qp=32, preset="fast"), plugins=["wiener"], options=SEND_OFTEN)
    enh = tmp_path / "vfr_enh.mkv"
    pipeline.enhance(enc, enh, media.EncoderSettings(codec="libx264", preset="ultrafast"))
    for path in (src, enc, enh):
        times = [f.pts * f.time_base for f in decode_all(path)]
        assert times == [Fraction(p, 1000) for p in pts], path


def other_packets(path):
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type in ("audio", "subtitle")]
        return [
            (p.stream.type, bytes(p), p.pts * p.time_base if p.pts is not None else None)
            for p in c.demux(streams)
            if p.size
        ]


def write(path, frames, settings, color=None, time_base=None):
    first = frames[0]
    info = media.StreamInfo(
        width=first.width,
        height=first.height,
        bit_depth=first.bit_depth,
        codec=settings.codec,
        time_base=time_base or first.time_base,
        rate=Fraction(30000, 1001),
        color=color or ColorInfo(),
    )
    out = media.OutputFile(path, info, settings)
    for f in frames:
        out.encode(f)
    out.close()


def test_the_pixel_aspect_survives_encode_and_enhance(tmp_path, carphone):
    """The source's A1:1 reaches the x265 base's VUI and the re-encoded output (it was lost: unknown)."""
    from fractions import Fraction

    base, out = tmp_path / "base.mkv", tmp_path / "out.mkv"
    pipeline.encode(carphone, base, media.EncoderSettings(qp=42, preset="ultrafast"))
    pipeline.enhance(base, out, media.EncoderSettings(codec="libx265", preset="ultrafast"), plugins=["none"])
    for path in (carphone, base, out):
        with media.InputFile(path) as inp:
            assert inp.info.sample_aspect == Fraction(1), path


def _y4m_header(path) -> list[str]:
    with open(path, "rb") as fh:
        return fh.readline().decode("ascii").split()[1:]


@pytest.mark.parametrize("siting", ["420jpeg", "420mpeg2", "420paldv"])
def test_a_y4m_output_keeps_the_sources_aspect_siting_and_names_its_postprocessors(carphone, tmp_path, siting):
    """enhance to .y4m writes the source's A1:1 (was A0:0), its chroma siting tag (was FFmpeg's guess) and the
    XGENPOST_POSTPROCESSORS field pipe writes (was none); the frames are the restored ones."""
    data = carphone.read_bytes()
    header, _, body = data.partition(b"\n")
    src = tmp_path / "src.y4m"
    src.write_bytes(header.replace(b"C420mpeg2 XYSCSS=420MPEG2", f"C{siting}".encode()) + b"\n" + body)
    out = tmp_path / "out.y4m"
    pipeline.enhance(src, out, media.EncoderSettings(codec="y4m"), plugins=["wiener"])
    tokens = _y4m_header(out)
    assert "A1:1" in tokens and "F30000:1001" in tokens and f"C{siting}" in tokens, tokens
    assert any(t.startswith("XGENPOST_POSTPROCESSORS=wiener/") for t in tokens), tokens
    assert [frame_md5(f) for f in decode_all(out)] == [frame_md5(f) for f in decode_all(src)]  # no side info: as given


@pytest.mark.parametrize("resume", [False, True])
def test_a_y4m_output_of_a_coded_stream_says_hevcs_siting_and_its_frame_rate(wiener_mkv, tmp_path, resume):
    """From an HEVC base: C420mpeg2 (HEVC's default siting, left), A1:1 from the VUI, and the frame rate, also
    when chunks are joined (--resume and --workers wrote the chunk files' time base, F64000:1)."""
    from genpost.jobs.schedule import Schedule

    out = tmp_path / "out.y4m"
    pipeline.enhance(wiener_mkv, out, media.EncoderSettings(codec="y4m"), plugins=None, schedule=Schedule(resume=resume,
                                                                                                          chunk_frames=8))
    tokens = _y4m_header(out)
    assert {"F30000:1001", "A1:1", "C420mpeg2"} <= set(tokens), tokens
    assert any(t.startswith("XGENPOST_POSTPROCESSORS=wiener/") for t in tokens), tokens
    assert len(decode_all(out)) == 33
