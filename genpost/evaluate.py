"""Rate-distortion evaluation: an anchor ladder vs genpost (the same bases + every side-info bit), per point.

Two anchors: plain x265 at each QP (genpost's points are then ``genpost encode`` + ``genpost enhance`` of
raw Annex-B .265 streams, so the rate includes every SEI NAL that carries side info, and no container
overhead on either side), or external streams such as VTM .266 encodes (the plugin analyzes their decode
against the source; its records plus their SEI framing are added to each stream's rate). Every point is
measured against the source at the source's bit depth: PSNR-Y/U/V, MS-SSIM, XPSNR and VMAF NEG.
The protocol and metric definitions are in docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import platform
import re
import tempfile
from fractions import Fraction
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from . import ffmpeg, media, metrics, pipeline, sideinfo
from .types import to_bit_depth

DEFAULT_QPS = (27, 32, 37, 42)
# BD-rate per metric key, computed on the point value named here (MS-SSIM on its dB scale)
BD_METRICS = {
    "psnr_y": "psnr_y",
    "psnr_u": "psnr_u",
    "psnr_v": "psnr_v",
    "ms_ssim": "ms_ssim_db",
    "xpsnr": "xpsnr",
    "vmaf_neg": "vmaf_neg",
}
PLOT_METRICS = (
    ("psnr_y", "PSNR-Y (dB)"),
    ("ms_ssim_db", "MS-SSIM (dB)"),
    ("xpsnr", "XPSNR-Y (dB)"),
    ("vmaf_neg", "VMAF NEG"),
)


class EvalError(pipeline.PipelineError):
    """The evaluation cannot be run as asked (bad ladder, frame counts that do not match)."""

    exit_code = 2


# ---------------------------------------------------------------- measuring one point


def measure(
    source: str | os.PathLike,
    test: str | os.PathLike,
    workdir: str | os.PathLike,
    frames: int,
    test_fps: Fraction | None = None,
) -> dict:
    """Every metric of the first ``frames`` frames of ``test`` against ``source``, streamed frame by frame.

    The test is brought to the source's bit depth first (``types.to_bit_depth``: left shift up,
    ``(x + 2^(s-1)) >> s`` clipped down). Both sides are written to y4m in the same pixel format for VMAF.
    """
    ref_y4m, test_y4m = Path(workdir) / "reference.y4m", Path(workdir) / "test.y4m"
    sums, ssim_sum, xpsnr = np.zeros(3), 0.0, {"y": [], "u": [], "v": []}
    with media.InputFile(source) as src, media.InputFile(test, test_fps) as tst:
        info = dataclasses.replace(src.info, frames=frames)
        depth = info.bit_depth
        weighted = metrics.xpsnr_weighted(info.width, info.height)
        compare = media.CompareFilter("xpsnr", info.width, info.height, depth, info.rate) if weighted else None
        writers = [media.OutputFile(p, info, media.EncoderSettings(codec="y4m")) for p in (ref_y4m, test_y4m)]
        refs, tests = src.frames(), tst.frames()
        try:
            for _ in range(frames):
                ref, out = next(refs, None), next(tests, None)
                if ref is None or out is None:
                    raise EvalError(f"{source if ref is None else test} has fewer than {frames} frames")
                if out.planes[0].shape != ref.planes[0].shape:
                    raise EvalError(f"{test} is {out.width}x{out.height}, the source {ref.width}x{ref.height}")
                out = to_bit_depth(out, depth)
                frame_psnr = [metrics.psnr(m, depth) for m in metrics.frame_mse(ref, out)]
                sums += frame_psnr
                ssim_sum += metrics.ms_ssim(ref.y, out.y, depth)
                if compare is None:
                    for plane, value in zip(xpsnr, frame_psnr):
                        xpsnr[plane].append(value)
                for meta in compare.push(ref, out) if compare else ():
                    _collect_xpsnr(meta, xpsnr)
                writers[0].encode(ref)
                writers[1].encode(out)
            for meta in compare.close() if compare else ():
                _collect_xpsnr(meta, xpsnr)
        except BaseException:
            for w in writers:
                w.abort()
            raise
        for w in writers:
            w.close()
    vmaf = ffmpeg.vmaf(test_y4m, ref_y4m)
    ms_ssim = ssim_sum / frames
    chroma = (info.width + 1) // 2, (info.height + 1) // 2
    return {
        "psnr_y": sums[0] / frames,
        "psnr_u": sums[1] / frames,
        "psnr_v": sums[2] / frames,
        "ms_ssim": ms_ssim,
        "ms_ssim_db": metrics.ms_ssim_db(ms_ssim),
        "xpsnr": metrics.sequence_xpsnr(xpsnr["y"], info.width, info.height, depth),
        "xpsnr_u": metrics.sequence_xpsnr(xpsnr["u"], *chroma, depth),
        "xpsnr_v": metrics.sequence_xpsnr(xpsnr["v"], *chroma, depth),
        "vmaf_neg": vmaf["mean"],
        "frames": frames,
    }


def _collect_xpsnr(meta: dict[str, str], out: dict[str, list[float]]) -> None:
    for plane in out:
        out[plane].append(float(meta[f"lavfi.xpsnr.xpsnr.{plane}"]))


def _kbps(size_bytes: int, frames: int, rate: Fraction) -> float:
    return size_bytes * 8 * float(rate) / frames / 1000


# ---------------------------------------------------------------- ladders


def _frame_count(path, fps=None) -> int:
    with media.InputFile(path, fps) as inp:
        return sum(1 for _ in inp.frames())


def _trim(source, output, frames: int) -> None:
    """The first ``frames`` frames of ``source`` as a y4m (the source of a short evaluation)."""
    with media.InputFile(source) as inp:
        info = dataclasses.replace(inp.info, frames=None)
        out = media.OutputFile(output, info, media.EncoderSettings(codec="y4m"))
        try:
            for frame in itertools.islice(inp.frames(), frames):
                out.encode(frame)
        except BaseException:
            out.abort()
            raise
        out.close()


def _sei_side_bytes(path) -> int:
    """Bytes of genpost SEI NAL units in a raw stream: file size minus the stream with them stripped."""
    with media.InputFile(path) as inp:
        codec = inp.sei_codec or "hevc"
        stripped = sum(
            len(sideinfo.strip_records_nal(data, codec)) for kind, data in inp.side_channels() if kind == "packet"
        )
    return os.path.getsize(path) - stripped


def _x265_ladder(source, plugin, qps, preset, bit_depth, options, rate, frames, tmp, progress):
    anchor, genpost = [], []
    y4m = media.EncoderSettings(codec="y4m")
    for qp in qps:
        progress(f"QP {qp}: x265 anchor, genpost encode, enhance, metrics")
        settings = media.EncoderSettings(qp=qp, preset=preset, bit_depth=bit_depth or 0)
        plain = os.path.join(tmp, f"anchor_{qp}.265")
        pipeline.encode(source, plain, settings)
        coded = os.path.join(tmp, f"genpost_{qp}.265")
        report = pipeline.encode(source, coded, settings, [plugin], "sei", options=options)
        restored = os.path.join(tmp, f"restored_{qp}.y4m")
        pipeline.enhance(coded, restored, y4m, [plugin], fps=rate, options=options)
        side = _sei_side_bytes(coded)
        anchor.append({"qp": qp, "kbps": _kbps(os.path.getsize(plain), frames, rate), "side_info_kbps": 0.0,
                       **measure(source, plain, tmp, frames, rate)})  # fmt: skip
        genpost.append({"qp": qp, "kbps": _kbps(os.path.getsize(coded), frames, rate),
                        "side_info_kbps": _kbps(side, frames, rate),
                        "side_info_records": sum(report.records.values()),
                        "base_matches_anchor": os.path.getsize(coded) - side == os.path.getsize(plain),
                        **measure(source, restored, tmp, frames)})  # fmt: skip
    return anchor, genpost


def stream_qp(path) -> int | None:
    """The QP of an external stream: from a manifest.json beside it that lists it, else ``qpNN`` in its name."""
    path = Path(path)
    manifest = path.parent / "manifest.json"
    if manifest.is_file():
        try:
            for entry in json.loads(manifest.read_text()).get("streams", []):
                if entry.get("file") == path.name and isinstance(entry.get("qp"), int):
                    return entry["qp"]
        except (ValueError, AttributeError, OSError):
            pass
    match = re.search(r"qp(\d+)", path.stem, re.IGNORECASE)
    return int(match.group(1)) if match else None


def _stream_ladder(source, plugin, streams, options, rate, source_frames, tmp, progress):
    anchor, genpost = [], []
    y4m = media.EncoderSettings(codec="y4m")
    for i, stream in enumerate(streams):
        progress(f"{stream}: analyze, restore, metrics")
        frames = _frame_count(stream, rate)
        if frames > source_frames:
            raise EvalError(f"{stream} has {frames} frames, the source only {source_frames}")
        qp = stream_qp(stream)
        records = pipeline.analyze_stream(source, stream, [plugin], qp, "sei", rate, options)
        side = sum(sideinfo.record_overhead_bytes(r.format_id, "sei") + len(r.payload) for r in records)
        sidecar = os.path.join(tmp, f"stream_{i}.gpsi")
        with open(sidecar, "wb") as fh:
            sideinfo.write_sidecar(fh, records)
        restored = os.path.join(tmp, f"restored_stream_{i}.y4m")
        pipeline.enhance(stream, restored, y4m, [plugin], sidecar=sidecar, fps=rate, options=options)
        kbps = _kbps(os.path.getsize(stream), frames, rate)
        common = {"qp": qp, "stream": str(stream)}
        anchor.append({**common, "kbps": kbps, "side_info_kbps": 0.0, **measure(source, stream, tmp, frames, rate)})
        genpost.append({**common, "kbps": kbps + _kbps(side, frames, rate), "side_info_kbps": _kbps(side, frames, rate),
                        "side_info_records": len(records), **measure(source, restored, tmp, frames)})  # fmt: skip
    return anchor, genpost


# ---------------------------------------------------------------- the evaluation


def evaluate(
    source: str | os.PathLike,
    plugin: str,
    qps=DEFAULT_QPS,
    preset: str = "medium",
    bit_depth: int | None = None,
    options: dict[str, str] | None = None,
    progress: Callable[[str], None] = lambda msg: None,
    streams: list[str | os.PathLike] | None = None,
    fps: Fraction | None = None,
    frames: int | None = None,
) -> dict:
    """Anchor and genpost points for each QP (or each external stream), and the BD-rates between them."""
    if streams and frames:
        raise EvalError("--frames applies to the x265 ladder; external streams are compared whole")
    if frames is not None and frames < 1:
        raise EvalError(f"--frames must be at least 1, got {frames}")
    if not streams and len(qps) < 2:
        raise EvalError("a BD-rate needs at least 2 QPs")
    if streams and len(streams) < 2:
        raise EvalError("a BD-rate needs at least 2 --stream files")
    (proc,) = pipeline.load_postprocessors([plugin])  # an unknown plugin or a missing ffmpeg fail before encoding
    tools = {**versions(), "plugin": f"{proc.name} {proc.version}"}
    with media.InputFile(source) as inp:
        rate = fps or inp.info.rate
        depth = inp.info.bit_depth
    if rate is None:
        raise pipeline.PipelineError(f"{source} has no frame rate; give --fps")
    with tempfile.TemporaryDirectory(prefix="genpost-eval-") as tmp:
        src = source
        if frames:
            src = os.path.join(tmp, "source.y4m")
            _trim(source, src, frames)
        count = _frame_count(src)
        if streams:
            anchor, genpost = _stream_ladder(src, plugin, streams, options, rate, count, tmp, progress)
        else:
            anchor, genpost = _x265_ladder(src, plugin, qps, preset, bit_depth, options, rate, count, tmp, progress)
    bd = {}
    for key, value in BD_METRICS.items():
        bd[key] = metrics.bd_rate([p["kbps"] for p in anchor], [p[value] for p in anchor],
                                  [p["kbps"] for p in genpost], [p[value] for p in genpost])  # fmt: skip
    return {
        "source": str(source),
        "plugin": plugin,
        "anchor_kind": "external streams" if streams else "x265",
        "preset": None if streams else preset,
        "bit_depth": depth,
        "frames": anchor[0]["frames"],
        "fps": str(rate),
        "anchor": anchor,
        "genpost": genpost,
        "bd_rate": {k: (None if v != v else v) for k, v in bd.items()},  # NaN (undefined) -> null
        "bd_rate_method": "PCHIP (Fritsch-Carlson) of log10(kbps) over quality, integrated exactly over the "
        "overlapping quality range; MS-SSIM on -10*log10(1-MS-SSIM)",
        "versions": tools,
    }


def versions() -> dict[str, str]:
    """Everything a number depends on: genpost, PyAV/FFmpeg, the ffmpeg binary and libvmaf, numpy."""
    out = {"genpost": _dist_version("genpost"), **media.versions(), "numpy": np.__version__}
    out["python"] = platform.python_version()
    out["ffmpeg_binary"] = ffmpeg.version()
    out["libvmaf"] = ffmpeg.libvmaf_version()
    out["vmaf_model"] = ffmpeg.VMAF_NEG
    out["imageio_ffmpeg"] = _dist_version("imageio-ffmpeg")
    return out


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------- plot


def plot(result: dict, output: str | os.PathLike) -> None:
    """RD curves (rate vs each metric, anchor vs genpost) as a PNG, written atomically."""
    try:
        import matplotlib
    except ImportError:
        raise EvalError("--plot needs matplotlib: pip install 'genpost[eval]'") from None
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    pipeline.check_paths([result["source"]], output)
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    for ax, (key, label) in zip(axes.flat, PLOT_METRICS):
        for name, style in (("anchor", "o-"), ("genpost", "s--")):
            pts = sorted(result[name], key=lambda p: p["kbps"])
            ax.plot([p["kbps"] for p in pts], [p[key] for p in pts], style, label=name)
        bd = result["bd_rate"][{"ms_ssim_db": "ms_ssim", "xpsnr": "xpsnr"}.get(key, key)]
        ax.set_title(f"{label}: BD-rate {bd:+.2f} %" if bd is not None else f"{label}: BD-rate undefined")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("kbps")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"{Path(result['source']).name}: {result['plugin']} vs {result['anchor_kind']}")
    fig.tight_layout()
    with pipeline.atomic_output(output) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
