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

import numpy as np

from . import declared, media, periods, sideinfo
from .plugins import (
    PluginError,
    by_side_info_format,
    get_postprocessor,
    make_plugin_manager,
)
from .postprocessor import Context, PayloadError, PostProcessor
from .types import Frame, to_bit_depth

CARRIAGES = ("sei", "nnpfc", "track", "sidecar")
DEFAULT_CARRIAGE = "sei"  # what `genpost encode` writes unless --carriage says otherwise (and so what eval measures)
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
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_sidecar(output: str | os.PathLike) -> str:
    return str(output) + ".gpsi"


def found_sidecar(input: str | os.PathLike, sidecar: str | os.PathLike | None) -> str | os.PathLike | None:
    """``sidecar`` if given, else the default-named one beside ``input`` when it exists (what ``encode
    --carriage sidecar`` wrote), so moving the pair together is enough."""
    if sidecar is not None:
        return sidecar
    beside = default_sidecar(input)
    return beside if os.path.isfile(beside) else None


# ---------------------------------------------------------------- plugins


def load_postprocessors(names: list[str], device: str = "cpu") -> list[PostProcessor]:
    pm = make_plugin_manager()
    chain = []
    for name in names:
        reg = get_postprocessor(name, pm)
        try:
            proc = reg.cls()
            proc.setup(device)
        except Exception as exc:  # a plugin's own failure, reported by name
            raise PluginError(f"plugin {name!r} failed to set up: {type(exc).__name__}: {exc}") from exc
        chain.append(proc)
    return chain


PLUGIN_ERROR_POLICIES = ("fail", "skip")


class PluginFailure(PipelineError):
    """A plugin raised something other than PayloadError and the policy is ``fail``."""


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
    decode: dict = field(default_factory=dict)  # genpost.damage.DecodeDamage of the source
    plugin_errors: dict[str, int] = field(default_factory=dict)  # frames skipped per plugin (--on-plugin-error skip)
    warnings: list[str] = field(default_factory=list)
    workers: dict = field(default_factory=dict)  # --workers > 1: chunks, seconds, bytes each way (genpost.distributed)

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
    max_errors: int | None = 0,
    on_plugin_error: str = "fail",
    resume: bool = False,
    chunk_frames: int | None = None,
    workers: int = 1,
    ray_address: str | None = None,
) -> EncodeReport:
    """Make the x265 base, decode exactly what a decoder will see, run each plugin's ``analyze`` on
    (source, reconstruction) and carry the payloads with the chosen carriage.

    Strict by default: any damaged source frame or plugin failure ends the job; ``max_errors`` allows that
    many (damaged frames are concealed, a failing plugin sends no side info for the frame with
    ``on_plugin_error="skip"``)."""
    if on_plugin_error not in PLUGIN_ERROR_POLICIES:
        raise PipelineError(f"--on-plugin-error must be one of {', '.join(PLUGIN_ERROR_POLICIES)}")
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
    _check_workers(workers, resume)
    chain = load_postprocessors(list(plugins))
    distributed_stats: dict = {}

    workdir = tempfile.mkdtemp(prefix=".genpost-", dir=Path(output).resolve().parent)
    try:
        with media.InputFile(source, fps) as src:
            src.max_errors = max_errors
            info = dataclasses.replace(src.info, bit_depth=settings.bit_depth or src.info.bit_depth)
            settings = dataclasses.replace(settings, bit_depth=info.bit_depth)
            if info.rate is None:
                raise PipelineError(f"{source} has no frame rate; give --fps")
            total = src.info.frames
            base_path = os.path.join(workdir, "base.mp4")  # keeps negative dts and any time base
            plugin_errors: dict[str, int] = {}
            if resume:  # base and analysis in resumable chunks (genpost.resume)
                from . import resume as resuming

                job = resuming.job_key(source, output, None, fps, settings, chain, options, chunk_frames, "encode")
                job["carriage"], job["sidecar_out"] = carriage, sidecar
                chunked = resuming.encode_in_chunks(
                    src, output, fps, info, settings, chain, carriage, dict(options or {}), progress,
                    max_errors, on_plugin_error, plugin_errors, job, chunk_frames, analyze_frames,
                )  # fmt: skip
                frames, records, base_path, pts_index, packets = chunked
            elif workers > 1:  # closed-GOP chunks encoded and analysed on Ray actors (genpost.distributed)
                from .distributed import encode_over_workers

                *chunked, distributed_stats = encode_over_workers(
                    src, workdir, info, settings, list(plugins), carriage, dict(options or {}), progress,
                    on_plugin_error, max_errors, plugin_errors, chunk_frames, workers, ray_address,
                )  # fmt: skip
                frames, records, base_path, pts_index, packets = chunked
            else:
                frames = _encode_base(src, base_path, info, settings, progress, total)
            damage = src.damage
        if not resume and workers == 1:
            records, pts_index = analyze_frames(
                source, base_path, fps, chain, settings, info, carriage, progress, frames, dict(options or {}),
                max_errors=max_errors, on_error=on_plugin_error, errors=plugin_errors,
            )  # fmt: skip
            packets = None
        with atomic_output(output) as tmp:
            signalling = declared.ChainSignalling(chain, records, dict(options or {}), info.width, info.height)
            mux_with_side_info(source, base_path, tmp, fps, info, carriage, records, pts_index, packets, signalling)
            if sidecar:
                with atomic_output(sidecar) as side_tmp, open(side_tmp, "wb") as fh:
                    sideinfo.write_sidecar(fh, records)
        base_bytes = os.path.getsize(output)
        if resume:
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


def analyze_frames(
    source, base_path, fps, chain, settings, info, carriage, progress, total, options,
    max_errors: int | None = 0, on_error: str = "fail", errors: dict[str, int] | None = None,
    sources=None, bases=None, damage=None,
):  # fmt: skip
    """Decode the base as a decoder will and let each plugin compute its payload per frame.

    A plugin that returns the payload already in force extends that record over this frame (a run),
    so a payload that stays right costs its carriage overhead once, not once per frame. A plugin that
    raises fails the job (``on_error="fail"``) or sends nothing for that frame (``"skip"``, counted in
    ``errors``); damaged source frames and such failures together may not exceed ``max_errors``."""
    runs: list[list] = []  # [format_id, first frame, payload, count]
    current: dict[str, list] = {}
    pts_index: dict[int, int] = {}
    errors = {} if errors is None else errors
    qp = settings.qp if settings.qp is not None else _crf_qp(settings)

    base_bits = None  # the base's mean bits per frame, where its file is at hand
    if base_path is not None and os.path.isfile(base_path) and total:
        base_bits = 8 * os.path.getsize(base_path) / total

    def failed(proc, what: str, exc: Exception) -> None:
        message = f"plugin {proc.name} failed to {what}: {type(exc).__name__}: {exc}".splitlines()[0]
        if on_error == "fail":
            raise PluginFailure(message) from exc
        errors[proc.name] = errors.get(proc.name, 0) + 1
        if max_errors is not None and sum(errors.values()) + (damage.frames if damage else 0) > max_errors:
            raise PipelineError(f"{message}; more than --max-errors {max_errors}") from exc

    updates = periods.Updates()  # content-adaptive weight updates, one per plugin and period
    phases = 2  # the progress bar: base encode, then analysis (and adaptation before it, when any)
    if sources is None and periods.adaptive(chain):  # (a --resume chunk runs with the shipped weights)
        phases = 3
        updates = periods.plan(
            chain, source, base_path, fps, info, Context(stream=info, qp=qp, options=options, base_bits=base_bits), carriage,
            lambda proc, exc: failed(proc, "adapt", exc),
            lambda n, m: progress(total + total * n // max(m, 1), phases * total),
        )  # fmt: skip
    with contextlib.ExitStack() as files:
        if sources is None:  # else: frames given by the caller (genpost.resume, one chunk at a time)
            src = files.enter_context(media.InputFile(source, fps))
            src.max_errors = max_errors
            sources, damage = src.frames(), src.damage
        if bases is None:
            bases = files.enter_context(media.InputFile(base_path)).frames()
        for decoded in bases:
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
                    update=updates.in_force(proc.side_info, decoded.index),
                    base_bits=base_bits,
                )
                try:
                    payload = bytes(proc.analyze(original, decoded, ctx) or b"")
                except Exception as exc:  # an untrusted plugin's bug, reported by name
                    failed(proc, f"analyze frame {decoded.index}", exc)
                    payload = b""
                if not payload:
                    current.pop(proc.side_info, None)
                elif live and payload == run[2]:
                    run[3] += 1
                else:
                    current[proc.side_info] = run = [proc.side_info, decoded.index, payload, 1]
                    runs.append(run)
            progress((phases - 1) * total + decoded.index + 1, phases * total)
    records = updates.records + [sideinfo.Record(fid, first, payload, count) for fid, first, payload, count in runs]
    return records, pts_index


def _crf_qp(settings: media.EncoderSettings) -> int | None:
    return None if settings.crf is None else int(round(settings.crf))


def analyze_stream(
    source: str | os.PathLike,
    base: str | os.PathLike,
    plugins: list[str],
    qp: int | None = None,
    carriage: str = "sei",
    fps: Fraction | None = None,
    options: dict[str, str] | None = None,
    progress: Progress = _no_progress,
    chain: list[PostProcessor] | None = None,
) -> list[sideinfo.Record]:
    """Side-info records for a base someone else encoded (e.g. a VTM .266): each plugin's ``analyze`` on
    (source, the base's decode), with the same runs and overhead accounting as ``encode`` (genpost eval,
    ``encode --base``). ``chain``: the plugins already loaded (else loaded from ``plugins``)."""
    chain = load_postprocessors(list(plugins)) if chain is None else chain
    with media.InputFile(base, fps) as inp:
        info = inp.info
    settings = media.EncoderSettings(qp=qp, bit_depth=info.bit_depth)
    records, _ = analyze_frames(source, base, None, chain, settings, info, carriage, progress, info.frames or 0, dict(options or {}))
    return records


def mux_with_side_info(source, base_path, tmp, fps, info, carriage, records, pts_index, packets=None, signalling=None) -> None:
    """Mux the base's packets (or ``packets``: (bytes, packet) in decode order) with the source's other
    streams, carrying each frame's records as ``carriage`` says (``nnpfc``: with ``signalling``'s
    NNPFC/NNPFA messages, genpost.declared)."""
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
                if carriage == "nnpfc":
                    key, first = item.is_keyframe or first, False
                    out.mux_video(item, declared.with_declaration(data, codec, signalling, frame, key, recs))
                elif not recs or carriage == "sidecar":
                    out.mux_video(item)
                elif carriage == "sei":
                    out.mux_video(item, sideinfo.insert_nal(data, sideinfo.sei_nal(codec, recs), codec))
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
    errors: int = 0  # frames where the plugin raised (not PayloadError) and was skipped
    off: int = 0  # frames the stream's declared chain does not activate the plugin on (NNPFA)
    first_error: str | None = None


@dataclass
class EnhanceReport:
    output: str
    frames: int
    plugins: list[str]
    per_plugin: dict[str, PluginStats] = field(default_factory=dict)
    side_info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    decode: dict = field(default_factory=dict)  # genpost.damage.DecodeDamage of the input
    resumed_from: int = 0  # frames a previous --resume run had finished
    workers: dict = field(default_factory=dict)  # --workers > 1: chunks, seconds, bytes each way (genpost.distributed)

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
        read_sidecar_index(sidecar, index)
    return index


def read_sidecar_index(sidecar: str | os.PathLike, index: sideinfo.RecordIndex | None = None) -> sideinfo.RecordIndex:
    """A .gpsi sidecar's records added to ``index`` (a new one if None): the only side info a y4m pipe has."""
    index = sideinfo.RecordIndex() if index is None else index
    try:
        blob = Path(sidecar).read_bytes()
    except OSError as exc:
        raise PipelineError(f"cannot read side info {sidecar}: {exc.strerror}") from None
    index.add(*sideinfo.read_sidecar(blob))
    return index


def choose_postprocessors(
    index: sideinfo.RecordIndex, plugins: list[str] | None, plan: declared.DeclaredPlan | None = None
) -> tuple[list[str], list[str]]:
    """(names, warnings): the post-processors asked for (``none`` dropped), or, when None, the chain the
    stream declares (``plan``, from NNPFC) or else those whose side-info format ``index`` holds (what
    ``enhance`` does without ``--plugin``)."""
    warnings: list[str] = []
    if plugins is None and plan is not None and (plan.declared or plan.unknown):
        names, warnings = list(plan.names), list(plan.warnings)
    elif plugins is None:
        known = by_side_info_format()
        formats = list(dict.fromkeys(sideinfo.base_format(f) for f in index.formats()))  # updates: their plugin's
        names = [known[f].cls.name for f in formats if f in known]
        unknown = [f for f in formats if f not in known]
        if unknown:
            warnings.append(f"side info for {', '.join(unknown)} found but no installed plugin reads it")
    else:
        names = [n for n in plugins if n != "none"]
    if not names:
        warnings.append("no post-processor applies: frames pass through unchanged (the base is re-muxed)")
    return names, warnings


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
    on_plugin_error: str = "skip",
    resume: bool = False,
    chunk_frames: int | None = None,
    workers: int = 1,
    ray_address: str | None = None,
) -> EnhanceReport:
    """Decode, restore each frame with the chosen (or side-info-named) post-processors, re-encode, and
    re-mux with the input's audio/subtitles, timestamps and colour metadata.

    Errors (docs/reliability.md): damaged input frames are concealed and counted, a plugin that raises is
    skipped for that frame (``on_plugin_error="skip"``) or ends the job (``"fail"``); more damaged or failed
    frames than ``max_errors`` (None: no limit) end the job. ``resume`` works in GOP-aligned chunks that a
    later run with ``resume`` continues (genpost.resume).
    """
    if on_plugin_error not in PLUGIN_ERROR_POLICIES:
        raise PipelineError(f"--on-plugin-error must be one of {', '.join(PLUGIN_ERROR_POLICIES)}")
    sidecar = found_sidecar(input, sidecar)
    check_paths([input, sidecar], output)
    _check_workers(workers, resume)
    with media.InputFile(input, fps) as inp:
        inp.max_errors = None  # the job's budget covers decode damage and plugin failures together
        index = collect_side_info(inp, sidecar)
        signalled = declared.read_declared(inp) if plugins is None else None
        plan = declared.plan(signalled) if signalled is not None else None
        if signalled and signalled.record_offset:  # entered mid-stream: records name the whole stream's frames
            index = declared.shift_records(index, signalled.record_offset)
        names, warnings = choose_postprocessors(index, plugins, plan)
        chain = load_postprocessors(names)
        gate = plan if plan is not None and plan.declared else None  # None: records alone decide
        if gate is not None:
            options = {**plan.options, **dict(options or {})}  # the stream's default mode; the user's word wins
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
        ctx = Context(stream=info, options=dict(options or {}))  # qp: the base's is unknown here (not the re-encode's)
        restorer = FrameRestorer(chain, index, ctx, report, inp, max_errors, on_plugin_error, gate)
        if resume and not copy:
            from . import resume as resuming

            job = resuming.job_key(input, output, sidecar, fps, settings, chain, options, chunk_frames)
            resuming.enhance_in_chunks(
                inp, output, fps, info, settings, restorer, progress, job, chunk_frames, provenance(chain)
            )
        elif workers > 1 and not copy:  # keyframe-aligned chunks restored on Ray actors (genpost.distributed)
            from .distributed import enhance_over_workers

            enhance_over_workers(
                inp, output, fps, info, settings, restorer, progress, chunk_frames, workers, ray_address,
                provenance(chain),
            )  # fmt: skip
        else:
            if resume or workers > 1:
                flag = "--resume" if resume else "--workers"
                report.warnings.append(f"{flag}: packets are copied, which is quick, so the job ran in one pass")
            _warn_if_resumable(output, report)
            _enhance_stream(inp, output, info, settings, copy, chain, restorer, progress)
        restorer.finish()
    report.side_info = index.stats()
    if plan is not None and (plan.declared or plan.unknown):
        report.side_info["declared"] = {"chain": plan.declared, "activated": plan.names, "unknown": plan.unknown}
    if signalled is not None:
        report.side_info["nnpf"] = signalled.stats()
    return report


def _enhance_stream(inp, output, info, settings, copy, chain, restorer, progress) -> None:
    """One pass: demux, restore (or copy) the video, encode, and mux with the other streams."""
    report = restorer.report
    with atomic_output(output) as tmp:
        out = media.OutputFile(
            tmp,
            info,
            settings,
            template=inp,
            copy_from=inp if copy else None,
            metadata=provenance(chain),
        )
        report.warnings += [f"{what} dropped: {out.format} holds video only" for what in out.dropped]
        try:
            for unit in inp.demux():
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
        except BaseException:
            out.abort()
            raise
        out.close()


def _check_workers(workers: int, resume: bool) -> None:
    """Before any work: a usable --workers (Ray installed when > 1; --workers 1 never imports it)."""
    if workers != 1:
        from .distributed import check_workers

        check_workers(workers, resume)


def _warn_if_resumable(output, report: EnhanceReport) -> None:
    from .resume import work_dir

    if work_dir(output).is_dir():
        report.warnings.append(f"{work_dir(output)} holds an interrupted --resume run; add --resume to continue it")


class FrameRestorer:
    """enhance's per-frame policy: run the chain, count failures and input damage, stop past --max-errors."""

    def __init__(self, chain, index, ctx: Context, report: EnhanceReport, inp, max_errors, on_error: str, plan=None):
        self.chain, self.index, self.ctx, self.report, self.inp = chain, index, ctx, report, inp
        self.max_errors, self.on_error = max_errors, on_error
        self.plan = plan  # genpost.declared.DeclaredPlan: which frames each plugin is activated on (NNPFA)
        self.errors = 0  # frames a plugin failed on

    def __call__(self, frame: Frame) -> Frame:
        restored, failed = _restore(self.chain, frame, self.index, self.ctx, self.report, self.on_error, self.plan)
        self.errors += failed
        if self.max_errors is not None and self.errors + self.inp.damage.frames > self.max_errors:
            raise PipelineError(
                f"{self.errors} frames failed to restore and {self.inp.damage.frames} input frames are damaged: "
                f"more than --max-errors {self.max_errors}"
            )
        return restored

    def check_input(self) -> None:
        damage = self.inp.damage
        if self.max_errors is not None and self.errors + damage.frames > self.max_errors:
            raise media.MediaError(
                f"{self.inp.path}: {damage.first}; {damage.frames} damaged frames"
                + (f" and {self.errors} failed restorations" if self.errors else "")
                + f", more than --max-errors {self.max_errors}"
            )

    def finish(self) -> None:
        """Put the input damage and plugin errors into the report."""
        damage = self.inp.damage
        self.report.decode = damage.to_dict()
        if damage.frames or damage.rejected_packets:
            self.report.warnings.append(
                f"damaged input: {damage.concealed} frames concealed, {damage.corrupt} decoded with errors, "
                f"{damage.lost} lost; first: {damage.first}"
            )
        for name, stats in self.report.per_plugin.items():
            if stats.errors:
                self.report.warnings.append(
                    f"plugin {name} raised on {stats.errors} frames, which kept their input; first: {stats.first_error}"
                )


def _restore(
    chain, frame: Frame, index, ctx: Context, report: EnhanceReport, on_error: str = "skip", plan=None
) -> tuple[Frame, int]:
    """Run the chain on one frame; a plugin that fails on a payload leaves that frame as it was. With a
    declared chain (``plan``) a plugin runs only on the frames the stream activates it on.

    A plugin that raises anything else is named: with ``on_error="fail"`` the job ends (PluginFailure),
    with ``"skip"`` the frame keeps what that plugin was given and the error is counted.
    """
    failed = 0
    for proc in chain:
        stats = report.per_plugin[proc.name]
        if plan is not None and not plan.active(proc.name, frame.index):
            stats.off += 1
            continue
        payload = index.get(proc.side_info, frame.index) if proc.side_info else None
        if proc.side_info:  # the content-adaptive update in force for this frame's period, if any
            ctx = dataclasses.replace(ctx, update=index.get(sideinfo.update_format(proc.side_info), frame.index))
        stats.frames += 1
        stats.with_side_info += payload is not None
        try:
            out = proc.restore(frame, payload, ctx)
            _check_same_shape(proc, frame, out)
        except PayloadError:
            stats.fallbacks += 1
            failed += 1
            continue
        except Exception as exc:  # an untrusted plugin's bug must not cost the user the job
            message = f"plugin {proc.name} failed on frame {frame.index}: {type(exc).__name__}: {exc}"
            if on_error == "fail":
                raise PluginFailure(message.splitlines()[0]) from exc
            stats.errors += 1
            stats.first_error = stats.first_error or message.splitlines()[0]
            failed += 1
            continue
        frame = out
    return frame, failed


def _check_same_shape(proc, before: Frame, after: Frame) -> None:
    if not isinstance(after, Frame):
        raise PayloadError(f"{proc.name} returned {type(after).__name__}, not a Frame")
    if after.bit_depth != before.bit_depth:
        raise PayloadError(f"{proc.name} changed the bit depth")
    for a, b in zip(before.planes, after.planes):
        if not isinstance(b, np.ndarray) or a.shape != b.shape or a.dtype != b.dtype:
            raise PayloadError(f"{proc.name} changed the frame's shape or dtype")
    if before.bit_depth not in (8, 16) and max(int(p.max(initial=0)) for p in after.planes) > before.max_value:
        raise PayloadError(f"{proc.name} returned samples above {before.max_value}")


def provenance(chain: list[PostProcessor]) -> dict[str, str]:
    if not chain:
        return {}
    return {"genpost_postprocessors": ",".join(f"{p.name}/{p.version}" for p in chain)}


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
            "sidecar": str(sidecar) if sidecar is not None else None,
            "nnpfc": [c.to_dict() for c in nnpf.filters.values()],
            "nnpfa": nnpf.listing,
        }
