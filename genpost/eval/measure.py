"""Measuring one point against its clip's source: every metric in one decode of each, and the files a
point is made of (the trimmed source, frame counts, the rate, the side-info bytes of a raw stream).

``Reference`` is a clip prepared once for every measurement, with a per-frame cache of the source side of
the metrics (the same numbers as computing it again: only the time differs). Definitions: docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from .. import media, sideinfo
from ..errors import PipelineError
from ..media import ffmpeg
from ..types import ColorInfo, Frame, to_bit_depth
from . import deepmetrics, metrics, naturalness, perceptual, videometrics

PLANES = ("y", "u", "v")
VMAF_MODELS = {"vmaf": "vmaf_v0.6.1", "vmaf_neg": ffmpeg.VMAF_NEG}
# source-side metric features kept per clip and process (about 39 MiB a 720p frame, 7 MiB a 416x240 one)
SOURCE_CACHE_BYTES = 2 << 30
NIQE_EVERY = 4  # NIQE on every 4th frame (0, 4, 8, ...): ~0.26 s CPU a 720p frame, as much as the rest together


class EvalError(PipelineError):
    """The evaluation cannot be run as asked (bad ladder, frame counts that do not match)."""

    exit_code = 2


# ---------------------------------------------------------------- measuring one point


@dataclasses.dataclass(frozen=True)
class SourceFrame:
    """One source frame's half of each metric that compares pictures (``metrics.ms_ssim_features``,
    ``perceptual.picture_features``): computed once, compared with every test picture of the clip."""

    ms_ssim: metrics.MsSsimFeatures
    perceptual: perceptual.PictureFeatures

    @property
    def nbytes(self) -> int:
        return self.ms_ssim.nbytes + self.perceptual.nbytes


@dataclasses.dataclass
class Reference:
    """A clip prepared once for every measurement: the source to encode and compare (the clip, or its first
    ``frames`` frames), its frame count, its y4m for VMAF, and the learned metrics that can run."""

    source: str
    frames: int
    y4m: str
    deep: dict  # deepmetrics.load(): name -> scorer, or the reason it is unavailable
    source_cache: dict = dataclasses.field(default_factory=dict)  # frame number -> SourceFrame
    cached_bytes: int = 0

    def source_frame(self, n: int, frame: Frame, color: ColorInfo) -> SourceFrame:
        """Frame ``n``'s source side, kept for the next measurement while the cache is within
        SOURCE_CACHE_BYTES (the same numbers as computing it again: only the time differs)."""
        if n in self.source_cache:
            return self.source_cache[n]
        features = SourceFrame(
            metrics.ms_ssim_features(frame.y, frame.bit_depth),
            perceptual.picture_features(perceptual.metric_rgb(frame, color)),
        )
        if self.cached_bytes + features.nbytes <= SOURCE_CACHE_BYTES:
            self.source_cache[n] = features
            self.cached_bytes += features.nbytes
        return features


def prepare_reference(source, workdir, frames: int | None = None, trim: bool = False, deep=None) -> Reference:
    """Write the first ``frames`` source frames (all when None) once, as the y4m every VMAF run reads;
    with ``trim`` that y4m is also what gets encoded (``--frames``)."""
    path = os.path.join(workdir, "reference.y4m")
    count = trim_to(source, path, frames)
    if count == 0 or (frames is not None and count < frames):
        raise EvalError(f"{source} has {count} frames, fewer than the {frames or 1} needed")
    deep = deep if deep is not None else {n: "not requested" for n in (*deepmetrics.NAMES, *videometrics.NAMES)}
    return Reference(path if trim else str(source), count, path, deep)


def measure(ref: Reference, test: str | os.PathLike, workdir: str | os.PathLike, test_fps: Fraction | None = None) -> dict:
    """Every metric of the first ``ref.frames`` frames of ``test`` against the source, in one decode of each.

    The test is brought to the source's bit depth first (``types.to_bit_depth``: left shift up,
    ``(x + 2^(s-1)) >> s`` clipped down); perceptual metrics see both through ``perceptual.metric_rgb``.
    The source's half of MS-SSIM, HaarPSI and FSIM comes from ``ref.source_frame`` (cached per frame).
    """
    frames = ref.frames
    test_y4m = Path(workdir) / "test.y4m"
    xpsnr: dict[str, list[float]] = {p: [] for p in PLANES}
    mse, psnr_sum, ssim_sum = np.zeros(3), np.zeros(3), 0.0
    perfect = 0
    deep = {name: scorer for name, scorer in ref.deep.items() if callable(scorer) and name not in videometrics.NAMES}
    video = {name: scorer for name, scorer in ref.deep.items() if callable(scorer) and name in videometrics.NAMES}
    video_frames: tuple[list, list] = ([], [])  # RGB frames of the source and the test, for the video metrics
    perceived = {"haarpsi": 0.0, "fsim": 0.0, **dict.fromkeys(deep, 0.0)}
    niqe: list[float] = []
    temporal: list[float] = []
    previous: tuple | None = None
    with media.InputFile(ref.source) as src, media.InputFile(test, test_fps) as tst:
        info = dataclasses.replace(src.info, frames=frames)
        depth, color = info.bit_depth, info.color
        weighted = metrics.xpsnr_weighted(info.width, info.height)
        compare = media.CompareFilter("xpsnr", info.width, info.height, depth, info.rate) if weighted else None
        writer = media.OutputFile(test_y4m, info, media.EncoderSettings(codec="y4m"))
        refs, tests = src.frames(), tst.frames()
        try:
            for n in range(frames):
                r, out = next(refs, None), next(tests, None)
                if r is None or out is None:
                    raise EvalError(f"{ref.source if r is None else test} has fewer than {frames} frames")
                if out.planes[0].shape != r.planes[0].shape:
                    raise EvalError(f"{test} is {out.width}x{out.height}, the source {r.width}x{r.height}")
                out = to_bit_depth(out, depth)
                if previous is not None:
                    temporal.append(naturalness.temporal_error((previous[0].y, r.y), (previous[1].y, out.y), depth))
                previous = (r, out)
                if n % NIQE_EVERY == 0 and min(out.width, out.height) >= naturalness.MIN_SIDE:
                    niqe.append(naturalness.niqe(out.y, depth))
                frame_mse = metrics.frame_mse(r, out)
                frame_psnr = [metrics.psnr(m, depth) for m in frame_mse]
                mse += frame_mse
                psnr_sum += frame_psnr
                perfect += frame_mse[0] == 0
                source = ref.source_frame(n, r, color)
                ssim_sum += metrics.ms_ssim_compare(source.ms_ssim, metrics.ms_ssim_features(out.y, depth))
                rgb_out = perceptual.metric_rgb(out, color)
                for name, value in perceptual.scores(source.perceptual, perceptual.picture_features(rgb_out)).items():
                    perceived[name] += value
                rgb_ref = perceptual.metric_rgb(r, color) if deep or video else None  # learned metrics: pictures
                if rgb_ref is not None and video:
                    video_frames[0].append(rgb_ref.astype(np.float16))
                    video_frames[1].append(rgb_out.astype(np.float16))
                for name, scorer in deep.items():
                    perceived[name] += scorer(rgb_ref, rgb_out)
                if compare is None:
                    for plane, value in zip(PLANES, frame_psnr):
                        xpsnr[plane].append(value)
                for meta in compare.push(r, out) if compare else ():
                    _collect_xpsnr(meta, xpsnr)
                writer.encode(out)
            for meta in compare.close() if compare else ():
                _collect_xpsnr(meta, xpsnr)
        except BaseException:
            writer.abort()
            raise
        writer.close()
    vmaf = ffmpeg.vmaf_models(test_y4m, ref.y4m, tuple(VMAF_MODELS.values()))
    ms_ssim = ssim_sum / frames
    chroma = (info.width + 1) // 2, (info.height + 1) // 2
    point = {f"psnr_{p}": psnr_sum[i] / frames for i, p in enumerate(PLANES)}
    point.update({f"psnr_{p}_mse": metrics.psnr(mse[i] / frames, depth) for i, p in enumerate(PLANES)})
    point.update({
        "perfect_frames": int(perfect),
        "ms_ssim": ms_ssim,
        "ms_ssim_db": metrics.ms_ssim_db(ms_ssim),
        "xpsnr": metrics.sequence_xpsnr(xpsnr["y"], info.width, info.height, depth),
        "xpsnr_u": metrics.sequence_xpsnr(xpsnr["u"], *chroma, depth),
        "xpsnr_v": metrics.sequence_xpsnr(xpsnr["v"], *chroma, depth),
        **{key: vmaf[model]["mean"] for key, model in VMAF_MODELS.items()},
        **{name: perceived[name] / frames if name in perceived else None for name in ("haarpsi", "fsim", *deepmetrics.NAMES)},
        **{name: scorer(*video_frames, float(info.rate or 25)) for name, scorer in video.items()},
        **{name: None for name in videometrics.NAMES if name not in video},
        "niqe": float(np.mean(niqe)) if niqe else None,  # None: a picture under 194 samples on a side
        "flicker": naturalness.flicker(temporal),
        "frames": frames,
    })  # fmt: skip
    return point


def _collect_xpsnr(meta: dict[str, str], out: dict[str, list[float]]) -> None:
    for plane in out:
        out[plane].append(float(meta[f"lavfi.xpsnr.xpsnr.{plane}"]))


def kbps(size_bytes: int, frames: int, rate: Fraction) -> float:
    return size_bytes * 8 * float(rate) / frames / 1000


def frame_count(path, fps=None) -> int:
    with media.InputFile(path, fps) as inp:
        return sum(1 for _ in inp.frames())


def trim_to(source, output, frames: int | None) -> int:
    """The first ``frames`` frames of ``source`` (all when None) as a y4m; returns how many it wrote."""
    count = 0
    with media.InputFile(source) as inp:
        info = dataclasses.replace(inp.info, frames=None)
        with media.OutputFile(output, info, media.EncoderSettings(codec="y4m")) as out:
            for frame in itertools.islice(inp.frames(), frames):
                out.encode(frame)
                count += 1
    return count


def base_of(path) -> tuple[int, str]:
    """(bytes of genpost SEI in a raw stream: records and the NNPFC/NNPFA of a declared chain, i.e. the file
    size minus the stream with them stripped; sha256 of the stripped packets, the base a plain decoder sees)."""
    digest, stripped = hashlib.sha256(), 0
    with media.InputFile(path) as inp:
        codec = inp.sei_codec or "hevc"
        for kind, data in inp.side_channels():
            if kind == "packet":
                base = sideinfo.strip_records_nal(data, codec, nnpf=True)
                stripped += len(base)
                digest.update(len(base).to_bytes(4, "big") + base)
    return os.path.getsize(path) - stripped, digest.hexdigest()
