"""``genpost enhance`` (decode -> restore -> encode -> re-mux with the input's other streams) and
``genpost inspect`` (what a stream carries)."""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction

from .. import media
from ..errors import UsageError
from ..options import PluginErrorPolicy
from ..runner import declared
from ..runner.loop import EnhanceReport, Progress, collect_side_info, no_progress
from ..runner.session import DecodeSession
from ..types import to_bit_depth
from .outputs import atomic_output, check_paths, found_sidecar, provenance
from .schedule import Schedule


def enhance(
    input: str | os.PathLike,
    output: str | os.PathLike,
    settings: media.EncoderSettings,
    *,
    plugins: list[str] | None = None,
    sidecar: str | os.PathLike | None = None,
    fps: Fraction | None = None,
    options: dict[str, str] | None = None,
    progress: Progress = no_progress,
    max_errors: int | None = None,
    on_plugin_error: PluginErrorPolicy = PluginErrorPolicy.SKIP,
    schedule: Schedule = Schedule(),
) -> EnhanceReport:
    """Decode, restore each frame with the chosen (or side-info-named) post-processors, re-encode, and
    re-mux with the input's audio/subtitles, timestamps and colour metadata.

    Errors (docs/reliability.md): damaged input frames are concealed and counted, a plugin that raises is
    skipped for that frame (``on_plugin_error="skip"``) or ends the job (``"fail"``); more damaged or failed
    frames than ``max_errors`` (None: no limit) end the job. ``schedule`` (genpost.jobs.schedule): one pass, or
    with ``resume`` GOP-aligned chunks that a later run with ``resume`` continues (genpost.jobs.resume), or Ray
    workers (genpost.jobs.distributed).
    """
    sidecar = found_sidecar(input, sidecar)
    check_paths([input, sidecar], output)
    media.output_format(output)  # before any work, and named as the user gave it (not the temporary file)
    with media.InputFile(input, fps) as inp:
        inp.max_errors = None  # the job's budget covers decode damage and plugin failures together
        session = DecodeSession.open(inp, sidecar, plugins, options)  # what runs on which frames, and how
        chain, report = session.chain, session.report(output)
        if not inp.timed:
            raise UsageError(f"{input} is a raw stream without timing; give --fps")
        info = dataclasses.replace(inp.info, bit_depth=settings.bit_depth or inp.info.bit_depth)
        settings = dataclasses.replace(settings, bit_depth=info.bit_depth)
        # no codec asked: restored frames go to x265, an untouched base is copied packet for packet
        codec = settings.codec or ("libx265" if chain else "copy")
        if codec == "copy" and media.output_format(output) == "yuv4mpegpipe":
            codec = "y4m"
        # no --qp/--crf: x265/x264 code the restored frames losslessly, so the output is never worse than its
        # input (any lossy re-encode measured worse on some base: docs/cli.md, "The default output")
        lossless = codec in ("libx265", "libx264") and settings.qp is None and settings.crf is None
        settings = dataclasses.replace(settings, codec=codec, lossless=lossless or settings.lossless)
        report.output_coding = _coding(settings)
        copy = codec == "copy"
        restorer = session.restorer(info, report, inp, max_errors, on_plugin_error)
        if schedule.resume and not copy:
            from . import resume as resuming

            job = resuming.job_key(input, output, sidecar, fps, settings, chain, session.options, schedule.chunk_frames)
            resuming.enhance_in_chunks(
                inp, output, fps=fps, info=info, settings=settings, restorer=restorer, progress=progress, job=job,
                chunk_frames=schedule.chunk_frames, metadata=provenance(chain)
            )
        elif schedule.distributed and not copy:  # keyframe-aligned chunks restored on Ray actors (genpost.jobs.distributed)
            from .distributed import enhance_over_workers

            enhance_over_workers(
                inp, output, fps=fps, info=info, settings=settings, restorer=restorer, progress=progress,
                chunk_frames=schedule.chunk_frames, workers=schedule.workers,
                address=schedule.ray_address, metadata=provenance(chain),
            )  # fmt: skip
        else:
            if schedule.resume or schedule.distributed:
                flag = "--resume" if schedule.resume else "--workers"
                report.warnings.append(f"{flag}: packets are copied, which is quick, so the job ran in one pass")
            warn_if_resumable(output, report)
            enhance_stream(inp, output, info, settings, copy, chain, restorer, progress)
        restorer.finish()
    report.side_info = session.side_info_report()
    return report


def enhance_stream(inp, output, info, settings, copy, chain, restorer, progress) -> None:
    """One pass: demux, restore (or copy) the video, encode, and mux with the other streams."""
    report = restorer.report
    with atomic_output(output) as tmp:
        with media.OutputFile(tmp, info, settings, template=inp, copy_from=inp if copy else None, metadata=provenance(chain)) as out:
            report.warnings += out.dropped
            for unit in inp.demux(stamp=copy):
                if isinstance(unit, media.OtherPacket):
                    out.copy_packet(unit)
                    continue
                restorer.check_input()
                if copy:
                    if unit.packet is not None:
                        out.mux_video(unit.packet)
                    report.frames += len(unit.frames)
                    progress(report.frames, inp.info.frames)
                    continue
                for frame in unit.frames:
                    out.encode(to_bit_depth(restorer(frame), info.bit_depth))
                    report.frames += 1
                    progress(report.frames, inp.info.frames)
            restorer.check_input()


def _coding(settings: media.EncoderSettings) -> str:
    """The output's video coding in words: 'libx265 lossless', 'libx265 crf 12', 'libx264 qp 20', 'copy', ..."""
    codec = settings.codec or "libx265"
    if codec not in ("libx265", "libx264"):
        return codec
    if settings.lossless:
        return f"{codec} lossless"
    return f"{codec} qp {settings.qp}" if settings.qp is not None else f"{codec} crf {18 if settings.crf is None else settings.crf:g}"


def warn_if_resumable(output, report: EnhanceReport) -> None:
    from .resume import work_dir

    if work_dir(output).is_dir():
        report.warnings.append(f"{work_dir(output)} holds an interrupted --resume run; add --resume to continue it")


# ---------------------------------------------------------------- inspect


def inspect(input: str | os.PathLike, fps: Fraction | None = None, sidecar=None) -> dict:
    sidecar = found_sidecar(input, sidecar)
    with media.InputFile(input, fps) as inp:
        index = collect_side_info(inp, sidecar)
        frames = sum(1 for kind, _ in inp.side_channels() if kind == "packet")
        info = inp.info
        duration = float(frames / info.rate) if info.rate else None
        stats = index.stats()
        nnpf = declared.read_declared(inp)
        stats["nnpf"] = nnpf.stats()
        stats["chain"] = declared.read_chain(index).to_dict()  # the chain a chain record declares
        for entry in stats.get("formats", {}).values():
            entry["kbps"] = round(entry["bytes"] * 8 / duration / 1000, 3) if duration else None
        cut = inp.truncation()
        return {
            "file": str(input),
            "size_bytes": os.path.getsize(input),
            "video": {
                "codec": info.codec,
                "width": info.width,
                "height": info.height,
                "bit_depth": info.bit_depth,
                "pix_fmt": info.pix_fmt,
                "rate": str(info.rate) if info.rate else None,
                "time_base": str(info.time_base) if info.time_base else None,
                "frames": frames,
                "duration_s": duration,
                "color": dataclasses.asdict(info.color),
                "language": info.language,
            },
            "streams": [dataclasses.asdict(o) for o in inp.others],
            "side_info": stats,
            "sidecar": str(sidecar) if sidecar is not None else None,
            "nnpfc": [c.to_dict() for c in nnpf.filters.values()],
            "nnpfa": nnpf.listing,
            "warnings": [cut] if cut else [],
        }
