"""encode (source -> x265 base -> local decode -> analyze -> mux side info) and enhance (decode -> restore -> mux).

Data flows one way: bytes -> media -> Frame -> plugin -> Frame -> media -> bytes; side-info payloads
travel beside the frames keyed by the presentation-order frame index assigned at encode time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

from . import media, sideinfo
from .plugins import PluginError, by_side_info_format, get_postprocessor, make_plugin_manager
from .postprocessor import Context, PayloadError, PostProcessor
from .types import Frame, to_bit_depth

CARRIAGES = ("sei", "track", "sidecar")
Progress = Callable[[int, int | None], None]


class PipelineError(Exception):
    """The job cannot go on; the message is one line for the user."""

    exit_code = 6


class OutputPathError(PipelineError):
    """The output path is unusable (it is the input, a folder, or its folder is missing)."""

    exit_code = 4


def _no_progress(done: int, total: int | None) -> None:
    pass


# ---------------------------------------------------------------- output safety


def check_paths(inputs: list[str | os.PathLike], output: str | os.PathLike) -> None:
    out = Path(output).resolve()
    for path in inputs:
        if path is not None and Path(path).resolve() == out:
            raise OutputPathError(f"output {output} is the input; refusing to overwrite it")
    if out.is_dir():
        raise OutputPathError(f"output {output} is a directory")
    if not out.parent.is_dir():
        raise OutputPathError(f"output folder {out.parent} does not exist")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside ``path`` (same extension, so the muxer is picked the same way), renamed
    onto ``path`` only when the block succeeds; removed otherwise, so the destination is never partial."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def default_sidecar(output: str | os.PathLike) -> str:
    return str(output) + ".gpsi"


# ---------------------------------------------------------------- plugins


def load_postprocessors(names: list[str], device: str = "cpu") -> list[PostProcessor]:
    pm = make_plugin_manager()
    chain = []
    for name in names:
        reg = get_postprocessor(name, pm)
        proc = reg.cls()
        proc.setup(device)
        chain.append(proc)
    return chain


# ---------------------------------------------------------------- encode


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def encode(
    source: str | os.PathLike,
    output: str | os.PathLike,
    settings: media.EncoderSettings,
    plugins: list[str] = (),
    carriage: str = "sei",
    sidecar: str | os.PathLike | None = None,
    fps: Fraction | None = None,
    progress: Progress = _no_progress,
    options: dict[str, str] | None = None,
) -> EncodeReport:
    """Make the x265 base, decode exactly what a decoder will see, run each plugin's ``analyze`` on
    (source, reconstruction) and carry the payloads with the chosen carriage."""
    if carriage not in CARRIAGES:
        raise PipelineError(f"unknown carriage {carriage!r}; use one of {', '.join(CARRIAGES)}")
    if settings.codec not in (None, "libx265"):
        raise PipelineError("genpost encode makes an HEVC base: --codec must be libx265")
    fmt = media.output_format(output)
    if fmt in ("yuv4mpegpipe", "vvc"):
        raise PipelineError(f"cannot write an HEVC base to {Path(output).suffix}")
    if carriage == "track" and fmt in ("hevc",):
        raise PipelineError("a raw .265 stream has no room for a data track; use --carriage sei or sidecar")
    sidecar = str(sidecar) if sidecar else (default_sidecar(output) if carriage == "sidecar" else None)
    check_paths([source, sidecar], output)
    chain = load_postprocessors(list(plugins))

    workdir = tempfile.mkdtemp(prefix=".genpost-", dir=Path(output).resolve().parent)
    try:
        with media.InputFile(source, fps) as src:
            info = dataclasses.replace(src.info, bit_depth=settings.bit_depth or src.info.bit_depth)
            settings = dataclasses.replace(settings, bit_depth=info.bit_depth)
            if info.rate is None:
                raise PipelineError(f"{source} has no frame rate; give --fps")
            total = src.info.frames
            base_path = os.path.join(workdir, "base.mp4")  # keeps negative dts and any time base
            frames = _encode_base(src, base_path, info, settings, progress, total)
        records, pts_index = _analyze(
            source, base_path, fps, chain, settings, info, carriage, progress, frames, dict(options or {})
        )
        with atomic_output(output) as tmp:
            _mux_with_side_info(source, base_path, tmp, fps, info, carriage, records, pts_index)
            if sidecar:
                with atomic_output(sidecar) as side_tmp, open(side_tmp, "wb") as fh:
                    sideinfo.write_sidecar(fh, records)
        base_bytes = os.path.getsize(output)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    by_format: dict[str, int] = {}
    counts: dict[str, int] = {}
    covered: dict[str, int] = {}
    for rec in records:
        by_format[rec.format_id] = by_format.get(rec.format_id, 0) + len(rec.payload)
        counts[rec.format_id] = counts.get(rec.format_id, 0) + 1
        covered[rec.format_id] = covered.get(rec.format_id, 0) + rec.count
    duration = float(frames / info.rate) if info.rate else None
    return EncodeReport(str(output), frames, base_bytes, by_format, counts, covered, carriage, sidecar, duration)


def _encode_base(src, base_path, info, settings, progress, total) -> int:
    out = media.OutputFile(base_path, info, settings)
    n = 0
    try:
        for frame in src.frames():
            out.encode(to_bit_depth(frame, settings.bit_depth))
            n += 1
            progress(n, total)
    except BaseException:
        out.abort()
        raise
    out.close()
    if n == 0:
        raise PipelineError("the source has no frames")
    return n


def _analyze(source, base_path, fps, chain, settings, info, carriage, progress, total, options):
    """Decode the base as a decoder will and let each plugin compute its payload per frame.

    A plugin that returns the payload already in force extends that record over this frame (a run),
    so a payload that stays right costs its carriage overhead once, not once per frame."""
    runs: list[list] = []  # [format_id, first frame, payload, count]
    current: dict[str, list] = {}
    pts_index: dict[int, int] = {}
    qp = settings.qp if settings.qp is not None else _crf_qp(settings)
    with media.InputFile(source, fps) as src, media.InputFile(base_path) as base:
        sources = src.frames()
        for decoded in base.frames():
            original = next(sources, None)
            if original is None:
                raise PipelineError("the base has more frames than the source")
            pts_index[decoded.pts] = decoded.index
            original = to_bit_depth(original, info.bit_depth)
            for proc in chain:
                if not proc.side_info:
                    continue
                run = current.get(proc.side_info)
                live = run is not None and run[1] + run[3] == decoded.index and run[3] < sideinfo.MAX_RUN
                ctx = Context(
                    stream=info,
                    qp=qp,
                    options=options,
                    previous_payload=run[2] if live else None,
                    record_overhead_bits=8 * sideinfo.record_overhead_bytes(proc.side_info, carriage),
                )
                payload = bytes(proc.analyze(original, decoded, ctx) or b"")
                if not payload:
                    current.pop(proc.side_info, None)
                elif live and payload == run[2]:
                    run[3] += 1
                else:
                    current[proc.side_info] = run = [proc.side_info, decoded.index, payload, 1]
                    runs.append(run)
            progress(total + decoded.index + 1, 2 * total)
    records = [sideinfo.Record(fid, first, payload, count) for fid, first, payload, count in runs]
    return records, pts_index


def _crf_qp(settings: media.EncoderSettings) -> int | None:
    return None if settings.crf is None else int(round(settings.crf))


def _mux_with_side_info(source, base_path, tmp, fps, info, carriage, records, pts_index) -> None:
    by_frame: dict[int, list[sideinfo.Record]] = {}
    for rec in records:
        by_frame.setdefault(rec.frame_index, []).append(rec)
    with media.InputFile(source, fps) as src, media.InputFile(base_path) as base:
        out = media.OutputFile(
            tmp,
            info,
            media.EncoderSettings(codec="copy", bit_depth=info.bit_depth),
            template=src,
            copy_from=base,
            data_track=carriage == "track",
        )
        if carriage == "track" and out.data_stream is None and out.format != "matroska":
            out.abort()
            raise PipelineError(f"{out.format} cannot carry a data track; use --carriage sei or sidecar")
        try:
            video = ((base.packet_time(p), 0, data, p) for data, p in base.video_packets())
            others = ((src.packet_time(o.packet), 1, None, o) for o in src.other_packets())
            for _, kind, data, item in media.merge_by_time(video, others, key=lambda t: (t[0], t[1])):
                if kind == 1:
                    out.copy_packet(item)
                    continue
                recs = by_frame.get(pts_index.get(item.pts), [])
                if not recs or carriage == "sidecar":
                    out.mux_video(item)
                elif carriage == "sei":
                    out.mux_video(item, sideinfo.insert_nal(data, sideinfo.sei_nal("hevc", recs), "hevc"))
                elif out.data_stream is not None:
                    out.mux_data(sideinfo.encode_records(recs), item)  # before mux rescales item
                    out.mux_video(item)
                else:
                    out.mux_video(item, additional=sideinfo.encode_records(recs))
        except BaseException:
            out.abort()
            raise
        out.close()


# ---------------------------------------------------------------- enhance


@dataclass
class PluginStats:
    frames: int = 0
    with_side_info: int = 0
    fallbacks: int = 0


@dataclass
class EnhanceReport:
    output: str
    frames: int
    plugins: list[str]
    per_plugin: dict[str, PluginStats] = field(default_factory=dict)
    side_info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def collect_side_info(inp: media.InputFile, sidecar: str | os.PathLike | None = None) -> sideinfo.RecordIndex:
    """Every genpost record the input carries (SEI, data track, BlockAdditional) and the sidecar's."""
    index = sideinfo.RecordIndex()
    sei_codec = inp.sei_codec
    for kind, data in inp.side_channels():
        if kind == "packet":
            if sei_codec:
                index.add(*sideinfo.extract_records(data, sei_codec))
        else:
            index.add(*sideinfo.decode_records(data))
    if sidecar is not None:
        try:
            blob = Path(sidecar).read_bytes()
        except OSError as exc:
            raise PipelineError(f"cannot read side info {sidecar}: {exc.strerror}") from None
        index.add(*sideinfo.read_sidecar(blob))
    return index


def enhance(
    input: str | os.PathLike,
    output: str | os.PathLike,
    settings: media.EncoderSettings,
    plugins: list[str] | None = None,
    sidecar: str | os.PathLike | None = None,
    fps: Fraction | None = None,
    options: dict[str, str] | None = None,
    progress: Progress = _no_progress,
    max_errors: int | None = None,
) -> EnhanceReport:
    """Decode, restore each frame with the chosen (or side-info-named) post-processors, re-encode, and
    re-mux with the input's audio/subtitles, timestamps and colour metadata."""
    check_paths([input, sidecar], output)
    with media.InputFile(input, fps) as inp:
        index = collect_side_info(inp, sidecar)
        warnings: list[str] = []
        if plugins is None:
            known = by_side_info_format()
            names = [known[f].cls.name for f in index.formats() if f in known]
            unknown = [f for f in index.formats() if f not in known]
            if unknown:
                warnings.append(f"side info for {', '.join(unknown)} found but no installed plugin reads it")
        else:
            names = [n for n in plugins if n != "none"]
        if not names:
            warnings.append("no post-processor applies: the base is re-muxed unchanged")
        chain = load_postprocessors(names)
        if not inp.timed:
            raise PipelineError(f"{input} is a raw stream without timing; give --fps")
        info = dataclasses.replace(inp.info, bit_depth=settings.bit_depth or inp.info.bit_depth)
        settings = dataclasses.replace(settings, bit_depth=info.bit_depth)
        # no codec asked: restored frames go to x265, an untouched base is copied packet for packet
        codec = settings.codec or ("libx265" if chain else "copy")
        if codec == "copy" and media.output_format(output) == "yuv4mpegpipe":
            codec = "y4m"
        settings = dataclasses.replace(settings, codec=codec)
        copy = codec == "copy"
        report = EnhanceReport(str(output), 0, names, {p.name: PluginStats() for p in chain})
        report.warnings = warnings
        ctx = Context(stream=info, qp=settings.qp, options=dict(options or {}))
        errors = 0
        with atomic_output(output) as tmp:
            out = media.OutputFile(
                tmp,
                info,
                settings,
                template=inp,
                copy_from=inp if copy else None,
                metadata=_provenance(chain),
            )
            try:
                for unit in inp.demux():
                    if isinstance(unit, media.OtherPacket):
                        out.copy_packet(unit)
                        continue
                    if copy:
                        if unit.packet is not None:
                            out.mux_video(unit.packet)
                        report.frames += len(unit.frames)
                        progress(report.frames, inp.info.frames)
                        continue
                    for frame in unit.frames:
                        restored, failed = _restore(chain, frame, index, ctx, report)
                        errors += failed
                        if max_errors is not None and errors > max_errors:
                            raise PipelineError(f"more than --max-errors {max_errors} frames failed to restore")
                        out.encode(to_bit_depth(restored, info.bit_depth))
                        report.frames += 1
                        progress(report.frames, inp.info.frames)
            except BaseException:
                out.abort()
                raise
            out.close()
    report.side_info = index.stats()
    return report


def _restore(chain, frame: Frame, index, ctx: Context, report: EnhanceReport) -> tuple[Frame, int]:
    """Run the chain on one frame; a plugin that fails on a payload leaves that frame as it was."""
    failed = 0
    for proc in chain:
        stats = report.per_plugin[proc.name]
        payload = index.get(proc.side_info, frame.index) if proc.side_info else None
        stats.frames += 1
        stats.with_side_info += payload is not None
        try:
            out = proc.restore(frame, payload, ctx)
            _check_same_shape(proc, frame, out)
        except PayloadError:
            stats.fallbacks += 1
            failed += 1
            continue
        frame = out
    return frame, failed


def _check_same_shape(proc, before: Frame, after: Frame) -> None:
    for a, b in zip(before.planes, after.planes):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise PayloadError(f"{proc.name} changed the frame's shape or dtype")


def _provenance(chain: list[PostProcessor]) -> dict[str, str]:
    if not chain:
        return {}
    return {"genpost_postprocessors": ",".join(f"{p.name}/{p.version}" for p in chain)}


# ---------------------------------------------------------------- inspect


def inspect(input: str | os.PathLike, fps: Fraction | None = None, sidecar=None) -> dict:
    with media.InputFile(input, fps) as inp:
        index = collect_side_info(inp, sidecar)
        frames = sum(1 for kind, _ in inp.side_channels() if kind == "packet")
        info = inp.info
        duration = float(frames / info.rate) if info.rate else None
        stats = index.stats()
        for fmt, entry in stats.get("formats", {}).items():
            entry["kbps"] = round(entry["bytes"] * 8 / duration / 1000, 3) if duration else None
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
        }
