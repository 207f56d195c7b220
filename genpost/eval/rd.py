"""Rate-distortion evaluation of one clip: an anchor ladder vs genpost (the same bases + every side-info bit).

genpost's points are the user's flow: ``genpost encode --plugin NAME`` (or ``encode --base STREAM``) with
the default carriage, then ``genpost enhance`` with no plugin named, which runs what the stream says (its
declared chain, activation per picture and default-mode options, or the plugins its records name) with
no ``--option``. ``force_plugin`` runs ``enhance --plugin NAME`` with the options instead (not the user's flow).

Two anchors: plain x265 at each QP (raw Annex-B .265 streams, so the rate includes every SEI NAL that carries
side info, and no container overhead on either side), or external streams such as VTM .266 encodes (genpost
adds the side info to each stream as ``encode --base`` does, and the rate is that stream's). Each anchor point
is made and measured once and shared by every plugin. Every point is measured against the source at the
source's bit depth in one decode (``measure``). Many clips: ``testset``; plots: ``plot``. The protocol
and metric definitions are in docs/evaluation.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import heapq
import json
import os
import platform
import re
import tempfile
import time
from fractions import Fraction
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

from .. import media
from ..errors import GenpostError, PipelineError, UsageError, one_line
from ..jobs import encode_base, pipeline
from ..media import ffmpeg
from ..options import InBandCarriage
from ..types import to_bit_depth
from . import deepmetrics, metrics, pool, videometrics
from .measure import PLANES, VMAF_MODELS, EvalError, Reference, base_of, frame_count, kbps, measure, prepare_reference

DEFAULT_QPS = (27, 32, 37, 42)
# BD-rate per metric key, computed on the point value named here; a leading "-" negates it (distances,
# where lower is better, so that quality increases with rate); MS-SSIM on its dB scale
BD_METRICS = {
    "psnr_y": "psnr_y",
    "psnr_u": "psnr_u",
    "psnr_v": "psnr_v",
    "psnr_y_mse": "psnr_y_mse",
    "psnr_u_mse": "psnr_u_mse",
    "psnr_v_mse": "psnr_v_mse",
    "ms_ssim": "ms_ssim_db",
    "xpsnr": "xpsnr",
    "vmaf": "vmaf",
    "vmaf_neg": "vmaf_neg",
    "haarpsi": "haarpsi",
    "fsim": "fsim",
    "lpips": "-lpips",
    "dists": "-dists",
    "cvvdp": "cvvdp",  # JOD
    "flicker": "-flicker",  # lower is steadier; NIQE gets no BD-rate: it need not fall as the rate rises
}
REUSE_ANCHOR_SCORES = True  # False: measure such points anyway (tests compare the two)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One clip's evaluation as a point needs it, in this process or a worker's (it pickles): the prepared
    reference, the ladder (x265 QPs or external streams), the plugins and how genpost's points are made."""

    name: str  # the clip as given (what the report calls it)
    source: str  # what gets encoded: the clip, or its first --frames frames
    frames: int
    y4m: str  # the reference every VMAF run reads
    rate: Fraction
    depth: int  # the source's bit depth
    tmp: str  # each point works in a folder of its own under here
    plugins: tuple[str, ...]
    qps: tuple[int, ...] = DEFAULT_QPS
    streams: tuple[str, ...] = ()  # external anchors instead of the x265 ladder
    preset: str = "medium"
    bit_depth: int | None = None
    options: dict | None = None
    carriage: str = pipeline.DEFAULT_CARRIAGE  # how genpost's points carry side info (encode --carriage)
    force: bool = False  # restore with the plugin forced (enhance --plugin), not as the stream says
    label: str = ""  # how progress names the clip
    metrics: tuple[str, ...] = ()  # opt-in slow metrics (videometrics.NAMES) measured besides the default ones

    @property
    def points(self) -> int:
        return len(self.streams) if self.streams else len(self.qps)

    def where(self, index: int) -> str:
        """How progress names a point of the ladder: its QP or its stream."""
        return Path(self.streams[index]).name if self.streams else f"QP {self.qps[index]}"


@dataclasses.dataclass
class Point:
    """A finished point: its entry in the ladder, for an anchor what its plugins' points compare with, and
    the wall seconds per stage (``"anchor"`` or the plugin -> stage -> seconds)."""

    entry: dict
    seconds: dict[str, dict[str, float]]
    same: dict | None = None  # an anchor's scores and base hash


class Clock:
    """Wall seconds per (who, stage) of one point."""

    def __init__(self):
        self.seconds: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def timed(self, who: str, stage: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            entry = self.seconds.setdefault(who, {})
            entry[stage] = entry.get(stage, 0.0) + time.perf_counter() - start


_REFERENCES: dict[str, Reference] = {}  # y4m -> Reference with its per-frame caches, this process's last clip
KEEP_REFERENCES = 1  # points run clip by clip (run_ladders), so one clip's caches are what a process needs


def reference_of(clip: Clip) -> Reference:
    """The clip's Reference, kept between the points this process measures (its source-side caches)."""
    ref = _REFERENCES.pop(clip.y4m, None) or Reference(clip.source, clip.frames, clip.y4m, deep_metrics(clip.metrics))
    _REFERENCES[clip.y4m] = ref
    while len(_REFERENCES) > KEEP_REFERENCES:
        del _REFERENCES[next(iter(_REFERENCES))]
    return ref


@functools.cache
def deep_metrics(opt_in: tuple[str, ...] = ()) -> dict:
    """The learned metrics that can run here (``deepmetrics.load``), and the opt-in video metrics asked
    for (``videometrics.load``; the others "not requested"), loaded once per process."""
    video = videometrics.load(opt_in) if opt_in else {}
    return {**deepmetrics.load(), **{n: video.get(n, "not requested (--metrics)") for n in videometrics.NAMES}}


def _scores(clock: Clock, ref: Reference, plugin: str, restored: str, enhanced, base: str, anchor: dict, tmp: str) -> dict:
    """The restored point's metrics. When the decoder ran nothing on a base identical to the anchor's (the
    plugin sent nothing the stream asks to run), its pictures are the anchor's decode: the anchor's scores
    are reused (the same numbers, one measurement less) and the point says so (``scores_of_anchor``)."""
    if REUSE_ANCHOR_SCORES and not enhanced.plugins and base == anchor["base_sha256"]:
        return {**anchor["scores"], "scores_of_anchor": True}
    with clock.timed(plugin, "measure"):
        return {**measure(ref, restored, tmp), "scores_of_anchor": False}


def chain_of(plugin: str) -> list[str]:
    """The post-processors of an evaluated flow: one plugin, or a chain ``a+b`` (``encode --plugin a --plugin
    b``: b analyzes and restores what a gives, e.g. a learned plugin followed by wiener)."""
    return plugin.split("+")


def restore(clip: Clip, coded: str, restored: str, plugin: str) -> pipeline.EnhanceReport:
    """``coded`` restored to a y4m as ``genpost enhance coded -o restored.y4m`` does with no plugin named and
    no --option (what the stream declares or its records name); with ``clip.force`` as
    ``enhance --plugin PLUGIN --option ...`` (the plugin forced on every frame)."""
    y4m = media.EncoderSettings(codec="y4m")
    if clip.force:
        return pipeline.enhance(coded, restored, y4m, plugins=chain_of(plugin), fps=clip.rate, options=clip.options)
    return pipeline.enhance(coded, restored, y4m, plugins=None, fps=clip.rate)


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


def anchor_point(clip: Clip, index: int) -> Point:
    """The anchor at one rung of the ladder: plain x265 at a QP, or an external stream, measured."""
    ref, clock = reference_of(clip), Clock()
    with tempfile.TemporaryDirectory(prefix="anchor-", dir=clip.tmp) as tmp:
        if clip.streams:
            stream = clip.streams[index]
            frames = frame_count(stream, clip.rate)
            if frames != clip.frames:
                raise EvalError(f"{stream} has {frames} frames, {clip.streams[0]} {clip.frames}: give streams of one length")
            coded, common = stream, {"qp": stream_qp(stream), "stream": str(stream)}
        else:
            qp = clip.qps[index]
            coded, common = os.path.join(tmp, f"anchor_{qp}.265"), {"qp": qp}
            settings = media.EncoderSettings(qp=qp, preset=clip.preset, bit_depth=clip.bit_depth or 0)
            with clock.timed("anchor", "encode"):
                pipeline.encode(clip.source, coded, settings)
        with clock.timed("anchor", "measure"):
            scores = measure(ref, coded, tmp, clip.rate)
        entry = {**common, "kbps": kbps(os.path.getsize(coded), clip.frames, clip.rate), "side_info_kbps": 0.0, **scores}
        return Point(entry, clock.seconds, {"scores": scores, "base_sha256": base_of(coded)[1]})


def plugin_point(clip: Clip, index: int, plugin: str, same: dict) -> Point:
    """genpost's point at one rung: ``encode --plugin`` (or ``encode --base STREAM``), ``enhance``, measured."""
    ref, clock = reference_of(clip), Clock()
    with tempfile.TemporaryDirectory(prefix="point-", dir=clip.tmp) as tmp:
        restored = os.path.join(tmp, "restored.y4m")
        if clip.streams:
            stream = clip.streams[index]
            coded, common = os.path.join(tmp, "genpost" + Path(stream).suffix), {"qp": stream_qp(stream), "stream": str(stream)}
            with clock.timed(plugin, "encode"):
                report = encode_base.encode_with_base(ref.y4m, stream, coded, plugins=chain_of(plugin), carriage=clip.carriage,
                                                      qp=common["qp"], fps=clip.rate, options=clip.options)  # fmt: skip
            side = os.path.getsize(coded) - os.path.getsize(stream)
        else:
            qp = clip.qps[index]
            coded, common = os.path.join(tmp, f"genpost_{qp}.265"), {"qp": qp}
            settings = media.EncoderSettings(qp=qp, preset=clip.preset, bit_depth=clip.bit_depth or 0)
            with clock.timed(plugin, "encode"):
                report = pipeline.encode(clip.source, coded, settings, plugins=chain_of(plugin), carriage=clip.carriage,
                                         options=clip.options)
        with clock.timed(plugin, "enhance"):
            enhanced = restore(clip, coded, restored, plugin)
        side_bytes, base = base_of(coded)
        if not clip.streams:
            side = side_bytes
            common["base_matches_anchor"] = base == same["base_sha256"]
        scores = _scores(clock, ref, plugin, restored, enhanced, base, same, tmp)
        entry = {**common, "kbps": kbps(os.path.getsize(coded), clip.frames, clip.rate),
                 "side_info_kbps": kbps(side, clip.frames, clip.rate),
                 "side_info_records": sum(report.records.values()), "restored_by": enhanced.plugins, **scores}  # fmt: skip
        if index == clip.points // 2 and not clip.force:  # once per run: what a user's plain enhance writes
            with clock.timed(plugin, "default output"):
                entry["default_output"] = default_output(clip, ref, coded, tmp)
        return Point(entry, clock.seconds)


def default_output(clip: Clip, ref: Reference, coded: str, tmp: str) -> dict:
    """``genpost enhance CODED -o out.mkv`` with every default (the coding enhance picks), measured against
    the source per plane beside the input it restored: the user's "never worse than its input", end to end."""
    out = os.path.join(tmp, "default.mkv")
    try:
        report = pipeline.enhance(coded, out, media.EncoderSettings(), plugins=None, fps=clip.rate)
    except GenpostError as exc:  # the user's command failing is a finding, not a failed point
        return {"error": one_line(exc), "worse": []}
    planes = {}
    for name, path, fps in (("input", coded, clip.rate), ("output", out, None)):
        mse = np.zeros(3)
        with media.InputFile(ref.source) as src, media.InputFile(path, fps) as tst:
            for _, a, b in zip(range(clip.frames), src.frames(), tst.frames()):
                mse += metrics.frame_mse(a, to_bit_depth(b, a.bit_depth))
        planes[name] = [metrics.psnr(m / clip.frames, clip.depth) for m in mse]
    worse = [p for p, i, o in zip(PLANES, planes["input"], planes["output"]) if o < i]
    return {"coding": report.output_coding, "bytes": os.path.getsize(out), "input_bytes": os.path.getsize(coded),
            **{f"psnr_{p}_input": v for p, v in zip(PLANES, planes["input"])},
            **{f"psnr_{p}_output": v for p, v in zip(PLANES, planes["output"])}, "worse": worse}  # fmt: skip


@dataclasses.dataclass
class Ladders:
    """One clip's finished points as they come in, in ladder order, and what failed."""

    clip: Clip
    anchor: list = dataclasses.field(default_factory=list)
    genpost: dict = dataclasses.field(default_factory=dict)  # plugin -> points
    failures: dict = dataclasses.field(default_factory=dict)  # plugin -> the first error it raised
    seconds: dict = dataclasses.field(default_factory=dict)  # "anchor" or plugin -> stage -> wall seconds
    error: str | None = None  # the clip itself failed (its anchor)

    def __post_init__(self):
        self.anchor = [None] * self.clip.points
        self.genpost = {p: [None] * self.clip.points for p in self.clip.plugins}

    def add_seconds(self, seconds: dict[str, dict[str, float]]) -> None:
        for who, stages in seconds.items():
            entry = self.seconds.setdefault(who, {})
            for stage, s in stages.items():
                entry[stage] = entry.get(stage, 0.0) + s


def run_ladders(clips: list[Clip], jobs: int = 1, progress: Callable[[str], None] = lambda msg: None,
                stop_on_error: bool = False) -> list[Ladders]:  # fmt: skip
    """Every point of every clip, ``jobs`` at a time: the anchors first, each rung's plugin points as soon
    as its anchor is in. A plugin that fails on a clip is dropped for that clip; a clip whose anchor fails is
    reported and the others go on; with ``stop_on_error`` the first failure is the evaluation's error."""
    out = [Ladders(clip) for clip in clips]
    ready: list[tuple[int, int, int]] = []  # (clip, rung, 0 for the anchor or 1 + plugin number): a heap
    anchors: dict[tuple[int, int], dict] = {}  # (clip, rung) -> what the anchor's plugin points compare with
    for n, clip in enumerate(clips):
        ready += [(n, index, 0) for index in range(clip.points)]
    heapq.heapify(ready)
    running = 0
    with pool.executor(jobs) as ex:
        while ready or running:
            while ready and running < max(1, jobs):  # the earliest clip's work first: its source caches are warm
                n, index, order = heapq.heappop(ready)
                clip = clips[n]
                plugin = clip.plugins[order - 1] if order else None
                if out[n].error is not None or plugin in out[n].failures:
                    continue
                what = f"{plugin}: encode/analyze, enhance, metrics" if plugin else "x265 anchor, metrics"
                progress(f"{clip.label}{clip.where(index)}: {what}")
                if plugin is None:
                    ex.submit((n, index, plugin), anchor_point, clip, index)
                else:
                    ex.submit((n, index, plugin), plugin_point, clip, index, plugin, anchors[n, index])
                running += 1
            if not running:
                break
            (n, index, plugin), point = ex.next_done()
            running -= 1
            lad, clip = out[n], clips[n]
            if isinstance(point, pool.Failed):
                point = PointFailed(point.error, point.exit_code)
            if isinstance(point, BaseException):
                if stop_on_error:
                    raise point
                error = point.args[0] if isinstance(point, PointFailed) else one_line(point)
                if plugin is None:
                    lad.error = error
                    progress(f"{clip.label}failed: {error}")
                elif plugin not in lad.failures:
                    lad.failures[plugin] = f"{clip.label}{clip.where(index)}: {error}"
                    progress(f"{clip.label}{clip.where(index)}: {plugin} failed: {error}")
                continue
            lad.add_seconds(point.seconds)
            if plugin is None:
                lad.anchor[index], anchors[n, index] = point.entry, point.same
                for order in range(1, len(clip.plugins) + 1):
                    heapq.heappush(ready, (n, index, order))
            else:
                lad.genpost[plugin][index] = point.entry
    return out


class PointFailed(PipelineError):
    """A point failed in a worker process: its error line and its exit code come back, not its object."""

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


# ---------------------------------------------------------------- the evaluation


DECODER_USER = "as the stream says (genpost enhance with no plugin named)"
DECODER_FORCED = "forced (genpost enhance --plugin NAME with the --option values)"


def check_ladder(qps, streams, frames, carriage: str = pipeline.DEFAULT_CARRIAGE, jobs: int = 1) -> None:
    """Refuse a ladder that cannot give a BD-rate before any work starts."""
    if carriage not in [c.value for c in InBandCarriage]:
        raise EvalError(f"eval carries side info in the raw stream: --carriage must be one of {', '.join(InBandCarriage)}")
    if streams and frames:
        raise EvalError("--frames applies to the x265 ladder; external streams are compared whole")
    if frames is not None and frames < 1:
        raise EvalError(f"--frames must be at least 1, got {frames}")
    if not streams and len(qps) < 2:
        raise EvalError("a BD-rate needs at least 2 QPs")
    if streams and len(streams) < 2:
        raise EvalError("a BD-rate needs at least 2 --stream files")
    if jobs < 0:
        raise EvalError(f"--jobs must be 0 (one per core) or more, got {jobs}")
    ffmpeg.require_vmaf("eval's VMAF", "eval")  # a missing optional package fails before any anchor is encoded


def evaluate(source, plugin: str, qps=DEFAULT_QPS, *, preset: str = "medium", bit_depth: int | None = None,
             options: dict[str, str] | None = None, progress: Callable[[str], None] = lambda msg: None,
             streams: list[str | os.PathLike] | None = None, fps: Fraction | None = None,
             frames: int | None = None, carriage: str = pipeline.DEFAULT_CARRIAGE,
             force_plugin: bool = False, jobs: int = 1, metrics: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """Anchor and genpost points for each QP (or each external stream), and the BD-rates between them."""
    runs, _ = evaluate_clip(source, [plugin], qps, preset=preset, bit_depth=bit_depth, options=options, progress=progress,
                            streams=streams, fps=fps, frames=frames,
                            stop_on_error=True, carriage=carriage, force_plugin=force_plugin, jobs=jobs,
                            metrics=metrics)  # fmt: skip
    return runs[0]


def evaluate_clip(source, plugins: list[str], qps=DEFAULT_QPS, *, preset: str = "medium", bit_depth: int | None = None,
                  options: dict[str, str] | None = None, progress: Callable[[str], None] = lambda msg: None,
                  streams=None, fps: Fraction | None = None, frames: int | None = None,
                  label: str = "", stop_on_error: bool = False, carriage: str = pipeline.DEFAULT_CARRIAGE,
                  force_plugin: bool = False, jobs: int = 1, metrics: tuple[str, ...] = ()) -> tuple[list[dict], dict[str, str]]:  # fmt: skip
    """One run per plugin that succeeded (each shaped as ``evaluate``'s result), and plugin -> error for the
    others. Each anchor point is encoded, decoded and measured once for all plugins."""
    check_ladder(qps, streams, frames, carriage, jobs)
    pipeline.load_postprocessors([m for p in plugins for m in chain_of(p)])  # unknown plugins fail before encoding
    with tempfile.TemporaryDirectory(prefix="genpost-eval-") as tmp:
        clip = prepare_clip(source, tmp, plugins=plugins, qps=qps, preset=preset, bit_depth=bit_depth, options=options,
                            streams=streams, fps=fps, frames=frames, carriage=carriage,
                            force=force_plugin, label=label, metrics=metrics)  # fmt: skip
        (lad,) = run_ladders([clip], pool.auto_jobs() if jobs == 0 else jobs, progress, stop_on_error)
    if lad.error is not None:
        raise PointFailed(lad.error)
    return runs_of(lad), dict(lad.failures)


def prepare_clip(source, tmp: str, *, plugins, qps=DEFAULT_QPS, preset: str = "medium", bit_depth: int | None = None,
                 options=None, streams=None, fps: Fraction | None = None, frames: int | None = None,
                 carriage: str = pipeline.DEFAULT_CARRIAGE, force: bool = False, label: str = "",
                 metrics: tuple[str, ...] = ()) -> Clip:  # fmt: skip
    """The clip's reference y4m written once in ``tmp`` (its first ``frames`` frames with --frames; with
    external streams as many frames as they have) and everything its points need."""
    with media.InputFile(source) as inp:
        rate, depth = fps or inp.info.rate, inp.info.bit_depth
    if rate is None:
        raise UsageError(f"{source} has no frame rate; give --fps")
    count = frame_count(streams[0], rate) if streams else frames
    ref = prepare_reference(source, tmp, count, trim=bool(frames))
    return Clip(str(source), str(ref.source), ref.frames, ref.y4m, rate, depth, tmp, tuple(plugins), tuple(qps),
                tuple(str(s) for s in streams or ()), preset, bit_depth, options, carriage, force, label,
                tuple(metrics))  # fmt: skip


def runs_of(lad: Ladders) -> list[dict]:
    """One run per plugin that did not fail, each shaped as ``evaluate``'s result."""
    clip, tools, deep = lad.clip, versions(), deep_metrics(lad.clip.metrics)
    runs = []
    for plugin in clip.plugins:
        procs = pipeline.load_postprocessors(chain_of(plugin))
        if plugin in lad.failures:
            continue
        bd = bd_rates(lad.anchor, lad.genpost[plugin])
        runs.append({
            "source": clip.name, "plugin": plugin, "anchor_kind": "external streams" if clip.streams else "x265",
            "preset": None if clip.streams else clip.preset, "bit_depth": clip.depth, "frames": clip.frames,
            "fps": str(clip.rate), "carriage": clip.carriage, "decoder": DECODER_FORCED if clip.force else DECODER_USER,
            "anchor": lad.anchor, "genpost": lad.genpost[plugin],
            "bd_rate": bd,
            "bd_rate_method": "PCHIP (Fritsch-Carlson) of log10(kbps) over quality, integrated exactly over the "
            "overlapping quality range; MS-SSIM on -10*log10(1-MS-SSIM); LPIPS and DISTS negated",
            "unavailable": {n: s for n, s in deep.items() if not callable(s)},
            "vs_anchor": vs_anchor(lad.anchor, lad.genpost[plugin]),
            "bd_worse": bd_worse(bd),
            "never_worse": never_worse(str((clip.options or {}).get("target", "fidelity")), bd,
                                       vs_anchor(lad.anchor, lad.genpost[plugin])),
            "seconds": {"anchor (shared)": _rounded(lad.seconds.get("anchor", {})),
                        "genpost": _rounded(lad.seconds.get(plugin, {}))},
            "versions": {**tools, "plugin": " + ".join(f"{proc.name} {proc.version}" for proc in procs)},
        })  # fmt: skip
    return runs


def _rounded(times: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in times.items()}


def bd_rates(anchor: list[dict], genpost: list[dict]) -> dict[str, float | None]:
    """BD-rate (%) per BD_METRICS key; null where undefined or where the metric did not run."""
    out = {}
    for key, value in BD_METRICS.items():
        sign, name = (-1.0, value[1:]) if value.startswith("-") else (1.0, value)
        if any(p.get(name) is None for p in anchor + genpost):
            out[key] = None
            continue
        bd = metrics.bd_rate([p["kbps"] for p in anchor], [sign * p[name] for p in anchor],
                             [p["kbps"] for p in genpost], [sign * p[name] for p in genpost])  # fmt: skip
        out[key] = None if bd != bd else bd  # NaN (undefined) -> null
    return out


def bd_worse(bd: dict) -> list[str]:
    """"Never worse at equal rate": the planes whose PSNR BD-rate (every side-info bit counted) is positive,
    as the user sees it, even where no QP's PSNR fell."""
    return [p for p in PLANES if (bd.get(f"psnr_{p}_mse") or 0.0) > 0]


def never_worse(target: str, bd: dict, versus: list[dict]) -> dict:
    """The user's promise, judged on the axis they chose (``--target``). fidelity: no plane's PSNR BD-rate
    above 0. perception: at no QP CVVDP below the base's nor flicker above it (CVVDP only where it ran:
    ``--metrics cvvdp``; ``unmeasured`` says so), with the PSNR BD-rate it costs reported beside."""
    if target != "perception":
        failures = [f"psnr_{p} BD-rate {bd[f'psnr_{p}_mse']:+.2f} %" for p in bd_worse(bd)]
        return {"axis": "fidelity", "holds": not failures, "failures": failures, "unmeasured": []}
    failures = []
    for v in versus:
        if v["delta_cvvdp"] is not None and v["delta_cvvdp"] < 0:
            failures.append(f"cvvdp {v['delta_cvvdp']:+.3f} JOD at QP {v['qp']}")
        if v["delta_flicker"] is not None and v["delta_flicker"] > 0:
            failures.append(f"flicker {v['delta_flicker']:+.4f} at QP {v['qp']}")
    unmeasured = [m for m in ("cvvdp", "flicker") if all(v[f"delta_{m}"] is None for v in versus)]
    return {"axis": "perception", "holds": not failures, "failures": failures, "unmeasured": unmeasured,
            "psnr_bd_rate": {p: bd.get(f"psnr_{p}_mse") for p in PLANES}}  # fmt: skip


def _delta(test: dict, anchor: dict, key: str) -> float | None:
    return None if test.get(key) is None or anchor.get(key) is None else test[key] - anchor[key]


def vs_anchor(anchor: list[dict], genpost: list[dict]) -> list[dict]:
    """ "Never worse", per QP and plane: restored minus anchor PSNR (dB, from the sequence's mean MSE) at the
    same base, and the planes where it is negative."""
    out = []
    for a, g in zip(anchor, genpost):
        delta = {p: g[f"psnr_{p}_mse"] - a[f"psnr_{p}_mse"] for p in PLANES}
        out.append({"qp": a["qp"], **{f"delta_psnr_{p}": d for p, d in delta.items()},
                    "delta_haarpsi": g["haarpsi"] - a["haarpsi"], "delta_fsim": g["fsim"] - a["fsim"],
                    "delta_flicker": _delta(g, a, "flicker"), "delta_niqe": _delta(g, a, "niqe"),
                    "delta_cvvdp": _delta(g, a, "cvvdp"),
                    "worse": [p for p, d in delta.items() if d < 0]})  # fmt: skip
    return out


def versions() -> dict[str, str]:
    """Everything a number depends on: genpost, PyAV/FFmpeg, the ffmpeg binary and libvmaf, numpy."""
    out = {"genpost": _dist_version("genpost"), **media.versions(), "numpy": np.__version__}
    out["python"] = platform.python_version()
    out["ffmpeg_binary"] = ffmpeg.version()
    out["libvmaf"] = ffmpeg.libvmaf_version()
    out["vmaf_model"] = ffmpeg.VMAF_NEG
    out["vmaf_models"] = ", ".join(VMAF_MODELS.values())
    out["imageio_ffmpeg"] = _dist_version("imageio-ffmpeg")
    out["torch"] = _dist_version("torch")
    return out


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"
