"""``genpost encode``: source -> x265 base -> local decode -> each plugin's analyze -> mux with side info.

Data flows one way: bytes -> media -> Frame -> plugin -> Frame -> media -> bytes; side-info payloads
travel beside the frames keyed by the presentation-order frame index assigned at encode time.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from .. import media, sideinfo
from ..errors import PipelineError, UsageError
from ..options import Carriage, PluginErrorPolicy
from ..postprocessor import PostProcessor
from ..runner import declared
from ..runner.loop import AnalysisJob, FrameAnalyzer, Progress, load_postprocessors, no_progress
from ..types import to_bit_depth
from .outputs import atomic_output, check_paths, default_sidecar
from .schedule import Schedule

BASE_OUTPUTS = {ext: fmt for ext, fmt in media.OUTPUT_FORMATS.items() if fmt not in ("yuv4mpegpipe", "vvc")}  # HEVC only
DEFAULT_CARRIAGE = Carriage.SEI  # what `genpost encode` writes unless --carriage says otherwise (and so what eval measures)


@dataclass
class EncodeReport:
    output: str
    frames: int
    base_bytes: int
    side_info_bytes: dict[str, int]
    records: dict[str, int]
    frames_with_side_info: dict[str, int]
    carriage: str
    sidecar: str | None = None
    duration_s: float | None = None
    decode: dict = field(default_factory=dict)  # genpost.media.damage.DecodeDamage of the source
    plugin_errors: dict[str, int] = field(default_factory=dict)  # frames skipped per plugin (--on-plugin-error skip)
    warnings: list[str] = field(default_factory=list)
    workers: dict = field(default_factory=dict)  # --workers > 1: chunks, seconds, bytes each way (genpost.jobs.distributed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def encode(
    source: str | os.PathLike,
    output: str | os.PathLike,
    settings: media.EncoderSettings,
    *,
    plugins: list[str] = (),
    carriage: Carriage = Carriage.SEI,
    sidecar: str | os.PathLike | None = None,
    fps: Fraction | None = None,
    progress: Progress = no_progress,
    options: dict[str, str] | None = None,
    max_errors: int | None = 0,
    on_plugin_error: PluginErrorPolicy = PluginErrorPolicy.FAIL,
    schedule: Schedule = Schedule(),
) -> EncodeReport:
    """Make the x265 base, decode exactly what a decoder will see, run each plugin's ``analyze`` on
    (source, reconstruction) and carry the payloads with the chosen carriage.

    Strict by default: any damaged source frame or plugin failure ends the job; ``max_errors`` allows that
    many (damaged frames are concealed, a failing plugin sends no side info for the frame with
    ``on_plugin_error="skip"``). ``schedule``: one pass, resumable chunks or Ray workers (genpost.jobs.schedule)."""
    carriage = Carriage.parse(carriage, "--carriage")
    if settings.codec not in (None, "libx265"):
        raise PipelineError("genpost encode makes an HEVC base: --codec must be libx265")
    fmt = media.output_format(output, BASE_OUTPUTS, " (genpost encode writes an HEVC base)")
    if carriage == "track" and fmt in ("hevc",):
        raise UsageError("a raw .265 stream has no room for a data track; use --carriage sei or sidecar")
    sidecar = str(sidecar) if sidecar else (default_sidecar(output) if carriage == "sidecar" else None)
    check_paths([source, sidecar], output)
    chain = load_postprocessors(list(plugins))
    distributed_stats: dict = {}

    workdir = tempfile.mkdtemp(prefix=".genpost-", dir=Path(output).resolve().parent)
    try:
        with media.InputFile(source, fps) as src:
            src.max_errors = max_errors
            info = dataclasses.replace(src.info, bit_depth=settings.bit_depth or src.info.bit_depth)
            settings = dataclasses.replace(settings, bit_depth=info.bit_depth)
            if info.rate is None:
                raise UsageError(f"{source} has no frame rate; give --fps")
            total = src.info.frames
            base_path = os.path.join(workdir, "base.mp4")  # keeps negative dts and any time base
            plugin_errors: dict[str, int] = {}
            analysis = AnalysisJob(
                source, base_path, chain, settings, info, carriage, 0, dict(options or {}), fps,
                max_errors=max_errors, on_plugin_error=on_plugin_error, errors=plugin_errors,
            )  # fmt: skip
            if schedule.resume:  # base and analysis in resumable chunks (genpost.jobs.resume)
                from . import resume as resuming

                job = resuming.job_key(source, output, None, fps, settings, chain, options, schedule.chunk_frames, "encode")
                job["carriage"], job["sidecar_out"] = carriage, sidecar
                chunked = resuming.encode_in_chunks(src, output, analysis, progress, job, schedule.chunk_frames)
                frames, records, base_path, pts_index, packets = chunked
            elif schedule.distributed:  # closed-GOP chunks encoded and analysed on Ray actors (genpost.jobs.distributed)
                from .distributed import encode_over_workers

                *chunked, distributed_stats = encode_over_workers(
                    src, workdir, info=info, settings=settings, names=list(plugins), carriage=carriage,
                    options=dict(options or {}), progress=progress,
                    on_plugin_error=on_plugin_error, max_errors=max_errors, plugin_errors=plugin_errors,
                    chunk_frames=schedule.chunk_frames,
                    workers=schedule.workers, address=schedule.ray_address,
                )  # fmt: skip
                frames, records, base_path, pts_index, packets = chunked
            else:
                frames = encode_base(src, base_path, info, settings, progress, total)
            damage = src.damage
        if not schedule.resume and not schedule.distributed:
            analysis.total = frames
            records, pts_index = FrameAnalyzer(analysis).run(progress)
            packets = None
        with atomic_output(output) as tmp:
            signalling = declared.ChainSignalling(
                chain, records, dict(options or {}), info.width, info.height, frames, analysis.default_acts
            )
            mux_with_side_info(source, base_path, tmp, fps=fps, info=info, carriage=carriage, records=records,
                               pts_index=pts_index, packets=packets, signalling=signalling)
            records = signalling.chain_written + records  # the chain declarations, counted as records
            if sidecar:
                with atomic_output(sidecar) as side_tmp, open(side_tmp, "wb") as fh:
                    sideinfo.write_sidecar(fh, records)
        base_bytes = os.path.getsize(output)
        if schedule.resume:
            resuming.remove_work(output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    duration = float(frames / info.rate) if info.rate else None
    report = EncodeReport(str(output), frames, base_bytes, *summarize_records(records), carriage, sidecar, duration)
    report.decode, report.plugin_errors = damage.to_dict(), plugin_errors
    report.workers = distributed_stats
    if damage.frames or damage.rejected_packets:
        report.warnings.append(f"damaged source: {damage.frames} frames concealed or lost; first: {damage.first}")
    for name, n in plugin_errors.items():
        report.warnings.append(f"plugin {name} raised on {n} frames, which carry no side info from it")
    return report


def summarize_records(records) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """(payload bytes, records, frames covered) per format: the side-info part of an EncodeReport."""
    by_format: dict[str, int] = {}
    counts: dict[str, int] = {}
    covered: dict[str, int] = {}
    for rec in records:
        by_format[rec.format_id] = by_format.get(rec.format_id, 0) + len(rec.payload)
        counts[rec.format_id] = counts.get(rec.format_id, 0) + 1
        covered[rec.format_id] = covered.get(rec.format_id, 0) + rec.count
    return by_format, counts, covered


def encode_base(src, base_path, info, settings, progress, total) -> int:
    """Every source frame into an x265 base at ``base_path``; returns the frame count."""
    n = 0
    with media.OutputFile(base_path, info, settings) as out:
        for frame in src.frames():
            out.encode(to_bit_depth(frame, settings.bit_depth))
            n += 1
            progress(n, total)
    if n == 0:
        raise PipelineError("the source has no frames")
    return n


def analyze_stream(
    source: str | os.PathLike,
    base: str | os.PathLike,
    plugins: list[str],
    *,
    qp: int | None = None,
    carriage: str = "sei",
    fps: Fraction | None = None,
    options: dict[str, str] | None = None,
    progress: Progress = no_progress,
    chain: list[PostProcessor] | None = None,
    default_acts: set[str] | None = None,
) -> list[sideinfo.Record]:
    """Side-info records for a base someone else encoded (e.g. a VTM .266): each plugin's ``analyze`` on
    (source, the base's decode), with the same runs and overhead accounting as ``encode`` (genpost eval,
    ``encode --base``). ``chain``: the plugins already loaded (else loaded from ``plugins``);
    ``default_acts``: a set to fill with the plugins whose default mode acted (``AnalysisJob``)."""
    chain = load_postprocessors(list(plugins)) if chain is None else chain
    with media.InputFile(base, fps) as inp:
        info = inp.info
    settings = media.EncoderSettings(qp=qp, bit_depth=info.bit_depth)
    job = AnalysisJob(source, base, chain, settings, info, carriage, info.frames or 0, dict(options or {}))
    job.default_acts = default_acts
    records, _ = FrameAnalyzer(job).run(progress)
    return records


def mux_with_side_info(source, base_path, tmp, *, fps, info, carriage, records, pts_index, packets=None, signalling=None) -> None:
    """Mux the base's packets (or ``packets``: (bytes, packet) in decode order) with the source's other
    streams, carrying each frame's records as ``carriage`` says (``nnpfc``: with ``signalling``'s
    NNPFC/NNPFA messages; else with its chain declaration record at each keyframe when it has one,
    genpost.runner.declared; ``sidecar``: the caller writes ``signalling.chain_written`` with the records)."""
    by_frame: dict[int, list[sideinfo.Record]] = {}
    for rec in records:
        by_frame.setdefault(rec.frame_index, []).append(rec)
    with media.InputFile(source, fps) as src, media.InputFile(base_path) as base:
        copy = media.EncoderSettings(codec="copy", bit_depth=info.bit_depth)
        with media.OutputFile(tmp, info, copy, template=src, copy_from=base, data_track=carriage == "track") as out:
            if carriage == "track" and out.data_stream is None and out.format != "matroska":
                raise PipelineError(f"{out.format} cannot carry a data track; use --carriage sei or sidecar")
            packets = base.video_packets() if packets is None else packets
            first = True  # the first access unit declares the chain whatever its flags say
            codec = base.sei_codec or "hevc"
            video = ((base.packet_time(p), 0, data, p) for data, p in packets)
            others = ((src.packet_time(o.packet), 1, None, o) for o in src.other_packets())
            for _, kind, data, item in media.merge_by_time(video, others, key=lambda t: (t[0], t[1])):
                if kind == 1:
                    out.copy_packet(item)
                    continue
                frame = pts_index.get(item.pts)
                recs = by_frame.get(frame, [])
                key, first = item.is_keyframe or first, False
                if carriage == "nnpfc":
                    out.mux_video(item, declared.with_declaration(data, codec, signalling, frame, key, recs))
                    continue
                if signalling is not None:  # the chain declaration record, first in the unit, at each keyframe
                    recs = signalling.chain_records(frame, key) + recs
                if not recs or carriage == "sidecar":
                    out.mux_video(item)
                elif carriage == "sei":
                    out.mux_video(item, sideinfo.insert_nal(data, sideinfo.sei_nal(codec, recs), codec))
                elif out.data_stream is not None:
                    out.mux_data(sideinfo.encode_records(recs), item)  # before mux rescales item
                    out.mux_video(item)
                else:
                    out.mux_video(item, additional=sideinfo.encode_records(recs))
