"""Shared fixtures: real clips only (the carphone y4m, VTM streams, and files the real ffmpeg builds)."""

from __future__ import annotations

import binascii
import subprocess
import zlib
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CARPHONE = DATA / "carphone_176x144_29.97.y4m"
VVC = DATA / "vvc"
# Carriage tests need records on (nearly) every frame; at its RD default wiener rightly sends little on a
# 176x144 clip (every record must pay on every plane at that plane's lambda), so these tests lower its
# lambdas. RD behaviour itself is tested in test_wiener*.py.
SEND_OFTEN = {"wiener.lambda_scale": "0.001"}


def v3_crc_matches(unit: bytes) -> bool:
    """Checked here, independently of the reader: a version-3 unit whose CRC matches its bytes. CRC-16
    lets 1 in 65536 random damages through, so a mutated unit may legitimately yield records then."""
    if not unit or unit[0] >> 4 != 3:
        return False
    if unit[0] & 1:
        return len(unit) > 4 and zlib.crc32(unit[:-4]) == int.from_bytes(unit[-4:], "big")
    return len(unit) > 2 and binascii.crc_hqx(unit[:-2], 0xFFFF) == int.from_bytes(unit[-2:], "big")


def ffmpeg(*args: str) -> None:
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def carphone() -> Path:
    return CARPHONE


@pytest.fixture(scope="session")
def av_source(tmp_path_factory) -> Path:
    """The carphone clip in MKV (ffv1) with an AAC audio track and an SRT subtitle track, language-tagged."""
    folder = tmp_path_factory.mktemp("avsrc")
    srt = folder / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,500\nHello\n\n2\n00:00:00,500 --> 00:00:01,000\nWorld\n")
    out = folder / "source.mkv"
    ffmpeg(
        "-i", str(CARPHONE), "-f", "lavfi", "-i", "sine=frequency=440:duration=1.1", "-i", str(srt),
        "-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:v", "ffv1", "-c:a", "aac", "-c:s", "copy",
        "-metadata:s:v:0", "language=deu", "-metadata:s:a:0", "language=fra", "-metadata:s:s:0", "language=eng",
        str(out),
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def wiener_mkv(tmp_path_factory, carphone) -> Path:
    """carphone coded by genpost encode at QP 37 with wiener side info in SEI (MKV)."""
    from genpost import media
    from genpost.jobs import pipeline

    out = tmp_path_factory.mktemp("enc") / "wiener.mkv"
    pipeline.encode(carphone, out, media.EncoderSettings(qp=37, preset="fast"), plugins=["wiener"], carriage="sei",
                    options=SEND_OFTEN)
    return out


def decode_all(path, fps=None):
    from genpost import media

    with media.InputFile(path, fps) as inp:
        return list(inp.frames())


def first_frames(n: int, path=CARPHONE) -> list:
    """The first ``n`` decoded frames of a clip (carphone by default)."""
    from genpost import media

    with media.InputFile(path) as f:
        return [fr for fr, _ in zip(f.frames(), range(n))]


def plugin_context(plugin: str, frame, options: dict, qp: int | None = 37):
    """A Context for ``frame``'s stream with ``PLUGIN.KEY=VALUE`` options, as the pipeline builds one."""
    from fractions import Fraction

    from genpost import Context, StreamInfo

    info = StreamInfo(frame.width, frame.height, frame.bit_depth, "hevc", None, Fraction(30))
    return Context(stream=info, qp=qp, options={f"{plugin}.{k}": str(v) for k, v in options.items()})


def psnr(a, b, peak: int) -> float:
    import numpy as np

    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(peak * peak / mse))


def base_and_restored_psnr_y(source, coded, restored) -> tuple[float, float, int]:
    """Mean PSNR-Y (8-bit) of the base decode and of the restoration against the source, and the frames."""
    import numpy as np

    from genpost import media

    with media.InputFile(source) as s, media.InputFile(coded) as b, media.InputFile(restored) as r:
        trio = list(zip(s.frames(), b.frames(), r.frames()))
    base = float(np.mean([psnr(a.y, c.y, 255) for a, c, _ in trio]))
    return base, float(np.mean([psnr(a.y, c.y, 255) for a, _, c in trio])), len(trio)


def encode_first_frames(folder: Path, plugin: str, frames: int, options: dict | None = None):
    """The first ``frames`` carphone frames as a y4m source and its x265 (QP 37, ultrafast) encode by
    ``genpost encode --plugin PLUGIN``: (source, coded, report, folder)."""
    from genpost import media
    from genpost.jobs import pipeline
    from genpost.learned.training_data import write_y4m

    src = folder / "src.y4m"
    write_y4m(src, [fr.planes for fr in first_frames(frames)], fps=30)
    coded = folder / "coded.mkv"
    settings = media.EncoderSettings(qp=37, preset="ultrafast")
    return src, coded, pipeline.encode(src, coded, settings, plugins=[plugin], options=options), folder


def check_plane_masks(proc, decoded, body: bytes, ctx) -> None:
    """Every plane mask of the ``framing`` prefix restores exactly the masked planes and leaves the others
    as decoded; the prefix round-trips (for plugins that wrap their payloads, genpost.learned.framing)."""
    import numpy as np

    from genpost.learned import framing

    full = proc.restore(decoded, body, ctx)
    assert all(not np.array_equal(f, d) for f, d in zip(full.planes, decoded.planes)), "the body must change every plane"
    for planes in range(8):
        payload = framing.wrap(body, planes)
        assert framing.unwrap(payload) == (body, planes, None)
        out = proc.restore(decoded, payload, ctx)
        for p, (o, f, d) in enumerate(zip(out.planes, full.planes, decoded.planes)):
            assert np.array_equal(o, f if planes >> p & 1 else d), (planes, p)


def check_perfect_frame_untouched(proc, frame, ctx) -> None:
    """A frame the base codes perfectly (source == decode, a black frame) comes back bit-identical."""
    import numpy as np

    black = frame.with_planes(*(np.full_like(p, v) for p, v in zip(frame.planes, (16, 128, 128))))
    ctx.record_overhead_bits = 8 * 64
    payload = proc.analyze(black, black, ctx)
    out = proc.restore(black, payload or None, ctx)
    assert all(np.array_equal(o, b) for o, b in zip(out.planes, black.planes)), payload


def check_adapted_payload(proc, source, decoded, ctx, sha256: str) -> None:
    """A frame payload coded under a content-adaptive update names it, restores with it (differently from
    the shipped weights) and refuses to restore without it (PayloadError: the frame falls back)."""
    import dataclasses

    import numpy as np

    from genpost import PayloadError
    from genpost.learned import adapt, framing

    update = adapt.encode_update(adapt.quantize({"gain": np.array([1.0, 0.5, 1.5])}, {}), adapt.weights_tag(sha256))
    ctx.record_overhead_bits = 8 * 64
    shipped = proc.restore(decoded, proc.analyze(source, decoded, ctx) or None, ctx)
    adapted_ctx = dataclasses.replace(ctx, update=update)
    payload = proc.analyze(source, decoded, adapted_ctx)
    body, planes, tag = framing.unwrap(payload)
    assert tag == framing.update_tag(update) and planes
    out = proc.restore(decoded, payload, adapted_ctx)
    assert out is not decoded and not all(np.array_equal(a, b) for a, b in zip(out.planes, shipped.planes))
    again = type(proc)()
    assert all(np.array_equal(a, b) for a, b in zip(again.restore(decoded, payload, adapted_ctx).planes, out.planes))
    base = [float(((s.astype(np.float64) - d) ** 2).sum()) for s, d in zip(source.planes, decoded.planes)]
    got = [float(((s.astype(np.float64) - o) ** 2).sum()) for s, o in zip(source.planes, out.planes)]
    assert all(g <= b for g, b in zip(got, base)), (got, base)
    with pytest.raises(PayloadError):
        proc.restore(decoded, payload, dataclasses.replace(ctx, update=None))


def check_adapted_onnx_matches_torch(make_network, owner, spec, in_channels: int) -> None:
    """A random full update (genpost.learned.adapt) on ``spec``'s convs: the ONNX session with the patched model
    bytes and the torch module agree within 1e-5, and the update changed the network."""
    import numpy as np

    from genpost.learned import adapt

    onnx_net, torch_net = make_network(owner, "onnx", "cpu"), make_network(owner, "torch", "cpu")
    shipped = onnx_net.shipped_state()
    rng = np.random.default_rng(0)
    sizes = spec.sizes(shipped)
    deltas = {g: rng.laplace(0, 0.004, sizes[g]).astype(np.float32) for g in adapt.CODED}
    deltas["gain"] = np.array([1.2, 0.6, 1.4])
    payload = adapt.encode_update(adapt.quantize(deltas, {"bias": 10, "scale": 9, "tail": 12}), 1)
    state = adapt.apply(shipped, spec, adapt.decode_update(payload, spec, sizes, 1))
    x = rng.random((in_channels, 40, 56), np.float32)
    a, b = onnx_net.with_state(state)(x), torch_net.with_state(state)(x)
    assert np.abs(a - b).max() < 1e-5
    assert np.abs(a - onnx_net(x)).max() > 1e-2
