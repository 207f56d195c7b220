"""Resumable enhance and encode: the work goes into GOP-aligned chunks so a killed job continues where it
stopped. (encode: see ``encode_in_chunks``; the rest of this note describes enhance.)

With ``--resume``, ``enhance`` encodes the restored video in chunks, each started at a keyframe of the
input once the chunk before holds ``chunk_frames`` frames, each written by a fresh encoder (so it opens
with a keyframe) into its own segment file in a work folder beside the output::

    .OUTPUT.genpost-resume/
        progress.json        the job's key and every finished chunk (first frame, frames, sha256, counts)
        chunk-00000.ts ...   MPEG-TS for x265/x264 (keeps pts and dts), NUT for ffv1 and y4m (intra)

A chunk counts as finished only once its segment is closed, synced and renamed and progress.json (written
to a temporary file, synced, renamed) lists it, so a kill at any instant leaves a consistent state: the
next run with ``--resume`` checks each listed segment's sha256, drops a damaged one and everything after
it, decodes the input again up to the first unfinished frame without restoring it (decoding is much
cheaper than restoring), and goes on. When all chunks are done their packets are muxed, with the input's
audio and subtitles, into a temporary file that is renamed onto the output; the work folder is removed.
Chunk boundaries depend only on the input and ``chunk_frames``, so a resumed job produces the same chunks,
and the same frames, as one that was never interrupted.

Plugins are restarted at the first unfinished chunk: a plugin that carries state from frame to frame
sees a fresh start there, as at any keyframe seek.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

from .. import __version__, media
from ..errors import PipelineError
from ..runner.loop import AnalysisJob, FrameAnalyzer, PluginStats, no_progress
from ..types import to_bit_depth
from .outputs import atomic_output

DEFAULT_CHUNK_FRAMES = 240
PROGRESS = "progress.json"
FORMAT_VERSION = 1


class ResumeError(PipelineError):
    """The work folder cannot be used to continue this job."""


def work_dir(output: str | os.PathLike) -> Path:
    out = Path(output).resolve()
    return out.parent / f".{out.name}.genpost-resume"


def job_key(input, output, sidecar, fps, settings, chain, options, chunk_frames, command: str = "enhance") -> dict:
    """What must not change between a run and its resumption (files by path, size and mtime)."""

    def file_id(path):
        if path is None:
            return None
        st = os.stat(path)
        return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]

    return {
        "command": command,
        "genpost": __version__,
        "input": file_id(input),
        "sidecar": file_id(sidecar),
        "output": str(Path(output).resolve()),
        "fps": str(fps) if fps is not None else None,
        "settings": {k: v for k, v in dataclasses.asdict(settings).items()},
        "plugins": [f"{p.name}/{p.version}" for p in chain],
        "options": dict(sorted((options or {}).items())),
        "chunk_frames": chunk_frames or DEFAULT_CHUNK_FRAMES,
    }


def segment_format(codec: str) -> tuple[str, str]:
    """(muxer, extension) for one chunk: TS keeps dts for codecs that reorder; NUT holds intra codecs."""
    return ("mpegts", "ts") if codec in ("libx265", "libx264") else ("nut", "nut")


def enhance_in_chunks(inp, output, *, fps, info, settings, restorer, progress, job, chunk_frames, metadata) -> None:
    """enhance's video loop, chunked and resumable; ``restorer`` is a genpost.runner.loop.FrameRestorer."""
    chunk_frames = chunk_frames or DEFAULT_CHUNK_FRAMES
    if chunk_frames < 1:
        raise PipelineError("--chunk-frames must be at least 1")
    check_output_is_writable(output, info, settings, inp)
    work = work_dir(output)
    work.mkdir(exist_ok=True)
    state = _load(work, job)
    chunks = state["chunks"]
    report = restorer.report
    done = sum(c["frames"] for c in chunks)
    if chunks:
        last = chunks[-1]
        report.per_plugin.update({k: PluginStats(**v) for k, v in last["per_plugin"].items()})
        restorer.errors = last["errors"]
    report.resumed_from = report.frames = done
    muxer, ext = segment_format(settings.codec)
    segment = None
    try:
        for unit in inp.demux(copy_others=False):
            restorer.check_input()
            for frame in unit.frames:
                if frame.index < done:
                    continue  # finished by an earlier run: decoded only to get here
                if segment is not None and frame.index in unit.keyframes and segment.frames >= chunk_frames:
                    chunks.append(segment.commit(report, restorer))
                    _save(work, state)
                    segment = None
                if segment is None:
                    name = f"chunk-{len(chunks):05d}.{ext}"
                    segment = Segment(work / name, frame.index, info, settings, muxer)
                segment.encode(to_bit_depth(restorer(frame), info.bit_depth))
                report.frames += 1
                progress(report.frames, inp.info.frames)
        restorer.check_input()
        if segment is not None:
            chunks.append(segment.commit(report, restorer))
            _save(work, state)
            segment = None
    finally:
        if segment is not None:
            segment.abort()
    if not chunks:
        raise PipelineError(f"{inp.path} has no frames")
    with atomic_output(output) as tmp:
        assemble(inp.path, fps, [work / c["file"] for c in chunks], tmp, info, metadata)
    remove_work(output)


def remove_work(output) -> None:
    """Remove the finished job's work folder (what genpost did not write there stays)."""
    work = work_dir(output)
    try:
        state = json.loads((work / PROGRESS).read_text())
        names = [c[key] for c in state["chunks"] for key in ("file", "records") if key in c]
    except (OSError, ValueError, KeyError, TypeError):
        names = []
    for name in names + [PROGRESS]:
        (work / name).unlink(missing_ok=True)
    try:
        work.rmdir()
    except OSError:
        pass  # someone put something else there: leave it


def encode_in_chunks(src, output, analysis: AnalysisJob, progress, job: dict, chunk_frames: int | None):
    """encode's base and analysis in resumable chunks: each chunk's base is encoded by a fresh x265 into a
    TS segment, decoded, and analyzed (genpost.runner.loop.FrameAnalyzer, as ``analysis`` says) against the same
    source frames (read by a second, lagging reader), and its records are kept beside it as a sidecar;
    records never run across a chunk boundary. Returns (frames, records, first segment, pts -> frame
    index, packets)."""
    fps, info, settings, errors = analysis.fps, analysis.info, analysis.settings, analysis.errors
    chunk_frames = chunk_frames or DEFAULT_CHUNK_FRAMES
    if chunk_frames < 1:
        raise PipelineError("--chunk-frames must be at least 1")
    work = work_dir(output)
    work.mkdir(exist_ok=True)
    state = _load(work, job)
    chunks = state["chunks"]
    done = sum(c["frames"] for c in chunks)
    if chunks:
        errors.update(chunks[-1]["plugin_errors"])
    lagging = media.InputFile(src.path, fps)
    lagging.max_errors = analysis.max_errors
    behind = lagging.frames()
    for _ in range(done):
        next(behind, None)
    total = src.info.frames
    segment = None
    try:
        for unit in src.demux(copy_others=False):
            for frame in unit.frames:
                if frame.index < done:
                    continue
                if segment is not None and frame.index in unit.keyframes and segment.frames >= chunk_frames:
                    chunks.append(_analyze_chunk(segment, behind, analysis, src.damage))
                    _save(work, state)
                    segment = None
                if segment is None:
                    segment = Segment(work / f"chunk-{len(chunks):05d}.ts", frame.index, info, settings, "mpegts")
                segment.encode(to_bit_depth(frame, settings.bit_depth))
                progress(frame.index + 1, total)
        if segment is not None:
            chunks.append(_analyze_chunk(segment, behind, analysis, src.damage))
            _save(work, state)
            segment = None
    finally:
        if segment is not None:
            segment.abort()
        lagging.close()
    if not chunks:
        raise PipelineError(f"{src.path} has no frames")
    from .. import sideinfo

    records, pts_index = [], {}
    for c in chunks:
        records += sideinfo.read_sidecar((work / c["records"]).read_bytes())[0]
        with media.InputFile(work / c["file"]) as seg:
            pts = sorted(seg.video_pts())
        pts_index.update({p: c["first"] + rank for rank, p in enumerate(pts)})
    segments = [work / c["file"] for c in chunks]
    packets = ((data, p) for _, data, p in media.concat_packets(segments))
    return sum(c["frames"] for c in chunks), records, segments[0], pts_index, packets


def _analyze_chunk(segment, behind, analysis: AnalysisJob, damage):
    """Close a base chunk, run the plugins' analyze on it, and make chunk and records durable."""
    import itertools

    from .. import sideinfo

    segment.out.close()
    with media.InputFile(segment.part) as base:
        bases = (f.replace(index=segment.first + i) for i, f in enumerate(base.frames()))
        sources = itertools.islice(behind, segment.frames)
        chunk = dataclasses.replace(analysis, source=None, base_path=None, fps=None, total=segment.frames, damage=damage)
        records, _ = FrameAnalyzer(chunk).run(no_progress, sources=sources, bases=bases)
    side = segment.path.with_suffix(".gpsi")
    side_part = side.with_name(side.name + ".part")
    sideinfo.write_sidecar(side_part, records)
    for path, final in ((segment.part, segment.path), (side_part, side)):
        _fsync(path)
        os.replace(path, final)
    _fsync(segment.path.parent)
    return {
        "file": segment.path.name,
        "records": side.name,
        "first": segment.first,
        "frames": segment.frames,
        "sha256": _sha256(segment.path),
        "records_sha256": _sha256(side),
        "plugin_errors": dict(analysis.errors),
    }


class Segment:
    """One chunk being encoded into ``NAME.part``; ``commit`` makes it durable under its name."""

    def __init__(self, path: Path, first: int, info, settings, muxer: str):
        self.path, self.first, self.frames = path, first, 0
        self.part = path.with_name(f"{path.stem}.part{path.suffix}")  # keeps the extension for probing
        self.out = media.OutputFile(self.part, info, settings, fmt=muxer)

    def encode(self, frame) -> None:
        self.out.encode(frame)
        self.frames += 1

    def commit(self, report, restorer) -> dict:
        self.out.close()
        _fsync(self.part)
        os.replace(self.part, self.path)
        _fsync(self.path.parent)
        return {
            "file": self.path.name,
            "first": self.first,
            "frames": self.frames,
            "sha256": _sha256(self.path),
            "per_plugin": {k: dataclasses.asdict(v) for k, v in report.per_plugin.items()},
            "errors": restorer.errors,
        }

    def abort(self) -> None:
        self.out.abort()
        self.part.unlink(missing_ok=True)


def check_output_is_writable(output, info, settings, inp) -> None:
    """Open (and drop) the final muxer now, so a codec the container cannot hold fails before the work."""
    out = Path(output).resolve()
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".part{out.suffix}", dir=out.parent)
    os.close(fd)
    try:
        media.OutputFile(tmp, info, settings, template=inp).abort()
    finally:
        os.unlink(tmp)


def _load(work: Path, job: dict) -> dict:
    """The progress of an earlier run of this job, keeping only chunks whose segments are intact."""
    for stale in [*work.glob("*.part"), *work.glob("*.part.*")]:
        stale.unlink(missing_ok=True)
    path = work / PROGRESS
    if not path.exists():
        state = {"version": FORMAT_VERSION, "job": job, "chunks": []}
        _save(work, state)
        return state
    try:
        state = json.loads(path.read_text())
        chunks = state["chunks"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ResumeError(f"{path} is unreadable; remove {work} to start over") from None
    if state.get("version") != FORMAT_VERSION or state.get("job") != job:
        raise ResumeError(
            f"{work} belongs to another job (input, settings or plugins changed); remove it to start over"
        )
    kept, expected = [], 0
    for c in chunks:
        seg = work / str(c.get("file", ""))
        side = work / str(c.get("records", "")) if "records" in c else None
        if c.get("first") != expected or not seg.is_file() or _sha256(seg) != c.get("sha256"):
            break
        if side is not None and (not side.is_file() or _sha256(side) != c.get("records_sha256")):
            break
        kept.append(c)
        expected += c["frames"]
    state["chunks"] = kept
    return state


def _save(work: Path, state: dict) -> None:
    tmp = work / (PROGRESS + ".part")
    with open(tmp, "w") as fh:
        json.dump(state, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, work / PROGRESS)
    _fsync(work)


def assemble(input_path, fps, segments: list[Path], tmp, info, metadata) -> None:
    """The chunks' packets, in order and with strictly increasing dts, muxed with the input's other streams."""
    with media.InputFile(input_path, fps) as src, media.InputFile(segments[0]) as first:
        src.max_errors = None
        copy = media.EncoderSettings(codec="copy", bit_depth=info.bit_depth)
        with media.OutputFile(tmp, info, copy, template=src, copy_from=first, metadata=metadata) as out:
            video = ((t, 0, p) for t, _, p in media.concat_packets(segments))
            others = ((src.packet_time(o.packet), 1, o) for o in src.other_packets())
            for _, kind, item in media.merge_by_time(video, others, key=lambda t: (t[0], t[1])):
                if kind:
                    out.copy_packet(item)
                else:
                    out.mux_video(item)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
