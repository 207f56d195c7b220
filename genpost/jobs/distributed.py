"""``--workers N``: enhance and encode in keyframe-aligned chunks on Ray actors, local or on a cluster.

The driver (this process) decodes the input once, cuts it into chunks that start at a keyframe (enhance;
the same cut as ``--resume``) or every ``chunk_frames`` frames (encode: each chunk becomes a closed GOP),
and ships each chunk's decoded frames (and, for enhance, its side-info payloads) to an actor. An actor
loads the plugins once, in its constructor, then restores or encodes chunk after chunk into a segment and
returns the segment's bytes. The driver writes the segments in order to a work folder beside the output
and joins them as ``--resume`` does (genpost.jobs.resume), so nothing but the driver touches the destination.

Ray is imported only here and only when ``--workers`` > 1: without it that says how to install it and
exits 2. Numbers, transfer sizes and where it stops scaling: docs/scaling.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

from .. import media
from ..errors import GenpostError, PipelineError
from ..install import hint
from ..media.damage import DecodeDamage
from ..postprocessor import Context
from ..runner.loop import AnalysisJob, EnhanceReport, FrameAnalyzer, FrameRestorer, PluginStats, load_postprocessors
from ..types import Frame, to_bit_depth
from . import resume
from .outputs import atomic_output

INSTALL_HINT = f"Ray is not installed: {hint('ray')} (or run with --workers 1)"
IN_FLIGHT_PER_WORKER = 2  # one chunk running, one queued: bounds the memory each worker holds
POLL_S = 0.5  # how often the driver asks the workers how far they are (progress)


class WorkersUsageError(PipelineError):
    """A --workers value or combination that cannot run (exit 2, before any work)."""

    exit_code = 2


class RayMissing(WorkersUsageError):
    pass


class WorkerError(PipelineError):
    """A worker died (killed, out of memory, node lost) or raised something genpost does not know."""


def require_ray():
    """The ray module, or RayMissing (exit 2) with the install line."""
    try:
        import ray
    except ImportError:
        raise RayMissing(INSTALL_HINT) from None
    return ray


def check_workers(workers: int, resume: bool = False) -> None:
    if workers < 1:
        raise WorkersUsageError(f"--workers must be at least 1, got {workers}")
    if workers > 1 and resume:
        raise WorkersUsageError("--resume runs in one process: give --workers 1 or drop --resume")
    if workers > 1:
        require_ray()


@contextlib.contextmanager
def session(workers: int, address: str | None = None):
    """A Ray session: the one already running (tests, ``genpost bench``), the cluster at ``address``, or
    a local one with ``workers`` CPUs, no dashboard and no network; shut down on exit if started here."""
    ray = require_ray()
    started = not ray.is_initialized()
    if started:
        import logging

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common = {"log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, **common)
        except BaseException as exc:  # a wrong address, a cluster that is down, Ctrl-C while starting
            ours = _children()
            with contextlib.suppress(Exception):
                ray.shutdown()
            _reap(ours)
            if not isinstance(exc, Exception):
                raise
            raise WorkerError(f"cannot start Ray{f' at {address}' if address else ''}: {exc}".splitlines()[0]) from None
    ours = _children() if started else []
    try:
        yield ray
    finally:
        if started:
            try:
                ray.shutdown()
            finally:
                _reap(ours)


def _children() -> list:
    """The processes ray.init just started (GCS, raylet, its agents), to be sure they end with the job."""
    try:
        import psutil  # a dependency of Ray

        return psutil.Process().children(recursive=True)
    except Exception:
        return []


def _reap(processes: list) -> None:
    """A Ctrl-C from a terminal also reaches the raylet, which then dies before stopping its agents:
    end what ray.shutdown() left of this session's own processes."""
    if not processes:
        return
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=3)

    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


# ---------------------------------------------------------------- what travels


class ChunkIndex:
    """The side-info payloads of one chunk's frames, answering ``get`` like sideinfo.RecordIndex."""

    def __init__(self, payloads: dict[tuple[str, int], bytes]):
        self.payloads = payloads

    def get(self, format_id: str, frame_index: int) -> bytes | None:
        return self.payloads.get((format_id, frame_index))


@dataclass
class Chunk:
    number: int
    frames: list[Frame]
    payloads: dict[tuple[str, int], bytes] = field(default_factory=dict)

    @property
    def first(self) -> int:
        return self.frames[0].index

    def nbytes(self) -> int:
        return sum(p.nbytes for f in self.frames for p in f.planes) + sum(len(b) for b in self.payloads.values())


@dataclass
class ChunkResult:
    number: int
    first: int
    frames: int
    segment: bytes
    seconds: float  # the worker's time on it (restore/encode + analyze)
    pid: int  # which worker process did it (plugins loaded once per process)
    per_plugin: dict = field(default_factory=dict)  # enhance: name -> PluginStats as a dict
    errors: int = 0  # enhance: frames a plugin failed on
    plugin_errors: dict = field(default_factory=dict)  # encode: frames skipped per plugin
    records: list = field(default_factory=list)  # encode: sideinfo.Record, frame indices global
    pts: list = field(default_factory=list)  # encode: the segment's video pts in presentation order


class ChunkWorker:
    """One Ray actor: plugins and their weights are set up once here, then reused for every chunk."""

    def __init__(self, names: list[str], job: dict, scratch: str):
        self.chain = load_postprocessors(list(names), job.get("device", "cpu"))
        self.job = job
        base = scratch if os.path.isdir(scratch) else None  # another node: its own temp folder
        self.scratch = Path(tempfile.mkdtemp(prefix="worker-", dir=base))
        self.done = 0  # frame steps finished over all chunks; the driver sums these for progress

    def progress(self) -> int:
        return self.done

    def enhance(self, chunk: Chunk) -> ChunkResult:
        start, job = time.perf_counter(), self.job
        info, settings = job["info"], job["settings"]
        report = EnhanceReport("", 0, [p.name for p in self.chain], {p.name: PluginStats() for p in self.chain})
        ctx = Context(stream=info, options=dict(job["options"]))
        no_damage = SimpleNamespace(path="", damage=DecodeDamage())  # the driver counts input damage
        restorer = FrameRestorer(self.chain, ChunkIndex(chunk.payloads), ctx, report, no_damage, None, job["on_plugin_error"],
                                 job.get("plan"))  # fmt: skip
        muxer, ext = resume.segment_format(settings.codec)
        with self._segment(chunk, ext, muxer) as segment:
            for frame in chunk.frames:
                segment.encode(to_bit_depth(restorer(frame), info.bit_depth))
                self.done += 1
            segment.commit(report, restorer)
            data = segment.path.read_bytes()
        per_plugin = {k: asdict(v) for k, v in report.per_plugin.items()}
        return ChunkResult(chunk.number, chunk.first, len(chunk.frames), data, time.perf_counter() - start,
                           os.getpid(), per_plugin, restorer.errors)  # fmt: skip

    def encode(self, chunk: Chunk) -> ChunkResult:
        """A fresh x265 (the chunk opens with an IDR: a closed GOP), then the plugins' analyze, and their
        content adaptation per period, on (source, this chunk's own decode), as genpost.jobs.encode does for
        a whole file: the chunk's source is written losslessly (y4m) beside its base so both are files."""
        start, job = time.perf_counter(), self.job
        info, settings, n = job["info"], job["settings"], len(chunk.frames)
        errors: dict[str, int] = {}
        source = self._write_source(chunk)
        try:
            with self._segment(chunk, "ts", "mpegts") as segment:
                for frame in chunk.frames:
                    segment.encode(to_bit_depth(frame, settings.bit_depth))
                    self.done += 1
                segment.out.close()
                encoded = self.done
                analysis = AnalysisJob(
                    str(source), str(segment.part), self.chain, settings, info, job["carriage"], n,
                    dict(job["options"]), max_errors=None, on_plugin_error=job["on_plugin_error"], errors=errors,
                )  # fmt: skip
                records, _ = FrameAnalyzer(analysis).run(
                    lambda done, total: setattr(self, "done", encoded + (n * done // total if total else 0))
                )
                self.done = encoded + n
                with media.InputFile(segment.part) as base:
                    pts = sorted(base.video_pts())
                data = segment.part.read_bytes()
        finally:
            source.unlink(missing_ok=True)
        records = [replace(r, frame_index=r.frame_index + chunk.first) for r in records]  # chunk -> file index
        return ChunkResult(chunk.number, chunk.first, n, data, time.perf_counter() - start, os.getpid(),
                           plugin_errors=errors, records=records, pts=pts)  # fmt: skip

    def _write_source(self, chunk: Chunk) -> Path:
        path = self.scratch / f"source-{chunk.number:05d}-{uuid.uuid4().hex[:8]}.y4m"
        depth = chunk.frames[0].bit_depth
        info = replace(self.job["info"], bit_depth=depth)
        out = media.OutputFile(path, info, media.EncoderSettings(codec="y4m", bit_depth=depth))
        try:
            for frame in chunk.frames:
                out.encode(frame)
        except BaseException:
            out.abort()
            path.unlink(missing_ok=True)
            raise
        out.close()
        return path

    @contextlib.contextmanager
    def _segment(self, chunk: Chunk, ext: str, muxer: str):
        path = self.scratch / f"chunk-{chunk.number:05d}-{uuid.uuid4().hex[:8]}.{ext}"
        segment = resume.Segment(path, chunk.first, self.job["info"], self.job["settings"], muxer)
        try:
            yield segment
        finally:
            segment.abort()
            path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the driver


class Pool:
    """``workers`` ChunkWorker actors fed from a chunk iterator, at most IN_FLIGHT_PER_WORKER each."""

    def __init__(self, ray, workers: int, names: list[str], job: dict, scratch: Path):
        self.ray = ray
        actor = ray.remote(num_cpus=1, max_concurrency=2)(ChunkWorker)  # 2: progress() answers mid-chunk
        start = time.perf_counter()
        self.actors = [actor.remote(list(names), job, str(scratch)) for _ in range(workers)]
        self.sent_bytes = 0
        try:  # wait until every worker has set its plugins up: a setup that fails ends the job here
            for a in self.actors:
                self._get(a.progress.remote())
        except BaseException:
            self.kill()
            raise
        self.started_s = time.perf_counter() - start

    def run(self, method: str, chunks, progress, on_result) -> None:
        """Send every chunk, hand each result to ``on_result`` as it arrives, report summed progress."""
        ray, load = self.ray, {a: 0 for a in self.actors}
        pending: dict = {}  # object ref -> actor
        chunks = iter(chunks)
        exhausted = False
        try:
            while True:
                while not exhausted and min(load.values()) < IN_FLIGHT_PER_WORKER:
                    chunk = next(chunks, None)
                    if chunk is None:
                        exhausted = True
                        break
                    actor = min(load, key=load.get)
                    self.sent_bytes += chunk.nbytes()
                    pending[getattr(actor, method).remote(chunk)] = actor
                    load[actor] += 1
                if not pending:
                    return
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
                for ref in ready:
                    load[pending.pop(ref)] -= 1
                    on_result(self._get(ref))
                progress(sum(self._get(a.progress.remote()) for a in self.actors))
        finally:
            self.kill()

    def kill(self) -> None:
        """Ctrl-C, an error or the end: no worker outlives the job."""
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)

    def _get(self, ref):
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, GenpostError) and cause.exit_code != 1:
                raise cause from None  # a genpost error raised in a worker keeps its message and exit code
            raise WorkerError(f"a worker failed: {cause or exc}".splitlines()[0]) from None
        except ray.exceptions.RayError as exc:
            raise WorkerError(f"a worker was lost: {exc}".splitlines()[0]) from None


def enhance_chunks(inp, index, chunk_frames: int, restorer):
    """The input's frames in keyframe-aligned chunks of at least ``chunk_frames`` (resume's cut), each
    with its frames' payloads of every side-info format the input holds (weight updates included); the
    input's damage budget is checked here."""
    frames: list[Frame] = []
    number = 0
    for unit in inp.demux(copy_others=False):
        restorer.check_input()
        for frame in unit.frames:
            if frames and frame.index in unit.keyframes and len(frames) >= chunk_frames:
                yield with_payloads(Chunk(number, frames), index)
                frames, number = [], number + 1
            frames.append(frame)
    restorer.check_input()
    if frames:
        yield with_payloads(Chunk(number, frames), index)


def with_payloads(chunk: Chunk, index) -> Chunk:
    """``chunk`` with its frames' payloads of every format ``index`` holds (a sideinfo.RecordIndex)."""
    formats = index.formats()
    for frame in chunk.frames:
        for fmt in formats:
            payload = index.get(fmt, frame.index)
            if payload is not None:
                chunk.payloads[(fmt, frame.index)] = payload
    return chunk


def enhance_over_workers(inp, output, *, fps, info, settings, restorer, progress, chunk_frames, workers, address, metadata):
    """enhance's video loop on ``workers`` actors; ``restorer`` is the driver's runner.FrameRestorer
    (its chain names the plugins, its report receives the counts, its budget covers input damage)."""
    chunk_frames = chunk_frames or resume.DEFAULT_CHUNK_FRAMES
    if chunk_frames < 1:
        raise PipelineError("--chunk-frames must be at least 1")
    resume.check_output_is_writable(output, info, settings, inp)
    report, total = restorer.report, inp.info.frames
    # the decode session's options and per-picture activation (NNPFA) travel with the job: every worker
    # restores exactly as the one-process enhance does
    job = {"info": info, "settings": settings, "options": dict(restorer.ctx.options), "on_plugin_error": restorer.on_plugin_error,
           "plan": restorer.plan}  # fmt: skip
    names = [p.name for p in restorer.chain]
    work = Path(tempfile.mkdtemp(prefix=".genpost-workers-", dir=Path(output).resolve().parent))
    _, ext = resume.segment_format(settings.codec)
    stats = Stats(workers)
    segments: dict[int, Path] = {}

    def take(result: ChunkResult) -> None:
        segments[result.number] = _write(work / f"chunk-{result.number:05d}.{ext}", result.segment)
        stats.add(result)
        report.frames += result.frames
        restorer.errors += result.errors
        for name, counts in result.per_plugin.items():
            _add_stats(report.per_plugin[name], counts)
        restorer.check_input()  # the job's --max-errors: input damage plus every worker's failures
        if restorer.max_errors is not None and restorer.errors + inp.damage.frames > restorer.max_errors:
            raise PipelineError(
                f"{restorer.errors} frames failed to restore and {inp.damage.frames} input frames are damaged: "
                f"more than --max-errors {restorer.max_errors}"
            )

    try:
        with session(workers, address) as ray:
            pool = Pool(ray, workers, names, job, work)
            stats.actor_start_s = pool.started_s
            chunks = enhance_chunks(inp, restorer.index, chunk_frames, restorer)
            pool.run("enhance", chunks, lambda done: progress(done, total), take)
            stats.sent_bytes = pool.sent_bytes
        if not segments:
            raise PipelineError(f"{inp.path} has no frames")
        with atomic_output(output) as tmp:
            resume.assemble(inp.path, fps, [segments[n] for n in sorted(segments)], tmp, info, metadata)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.workers = stats.to_dict()


def encode_over_workers(src, workdir, *, info, settings, names, carriage, options, progress, on_plugin_error, max_errors,
                        plugin_errors, chunk_frames, workers, address):  # fmt: skip
    """encode's base and analysis on ``workers`` actors, one closed-GOP chunk each call. Returns what
    genpost.jobs.encode muxes: (frames, records, first segment, pts -> frame index, packets, stats)."""
    chunk_frames = chunk_frames or resume.DEFAULT_CHUNK_FRAMES
    if chunk_frames < 1:
        raise PipelineError("--chunk-frames must be at least 1")
    if settings.keyint:  # whole GOPs per chunk, so GOP lengths match a single pass's where they can
        chunk_frames = max(1, round(chunk_frames / settings.keyint)) * settings.keyint
    job = {"info": info, "settings": settings, "options": dict(options), "on_plugin_error": on_plugin_error, "carriage": carriage}
    stats, work, total = Stats(workers), Path(workdir), src.info.frames
    results: dict[int, ChunkResult] = {}

    def take(result: ChunkResult) -> None:
        path = _write(work / f"chunk-{result.number:05d}.ts", result.segment)
        result.segment = path  # keep the path, drop the bytes
        results[result.number] = result
        stats.add(result)
        for name, n in result.plugin_errors.items():
            plugin_errors[name] = plugin_errors.get(name, 0) + n
        if max_errors is not None and sum(plugin_errors.values()) + src.damage.frames > max_errors:
            raise PipelineError(f"plugins failed on {sum(plugin_errors.values())} frames: more than --max-errors {max_errors}")

    def chunks():
        frames: list[Frame] = []
        number = 0
        for frame in src.frames():
            frames.append(frame)
            if len(frames) == chunk_frames:
                yield Chunk(number, frames)
                frames, number = [], number + 1
        if frames:
            yield Chunk(number, frames)

    with session(workers, address) as ray:
        pool = Pool(ray, workers, names, job, work)
        stats.actor_start_s = pool.started_s
        pool.run("encode", chunks(), lambda done: progress(done, 2 * (total or 0) or None), take)
        stats.sent_bytes = pool.sent_bytes
    if not results:
        raise PipelineError(f"{src.path} has no frames")
    ordered = [results[n] for n in sorted(results)]
    records = [r for res in ordered for r in res.records]
    pts_index = {p: res.first + rank for res in ordered for rank, p in enumerate(res.pts)}
    segments = [res.segment for res in ordered]
    packets = ((data, p) for _, data, p in media.concat_packets(segments))
    return sum(r.frames for r in ordered), records, segments[0], pts_index, packets, stats.to_dict()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _add_stats(into: PluginStats, counts: dict) -> None:
    into.frames += counts["frames"]
    into.with_side_info += counts["with_side_info"]
    into.fallbacks += counts["fallbacks"]
    into.errors += counts["errors"]
    into.first_error = into.first_error or counts["first_error"]


@dataclass
class Stats:
    """What the scaling model in docs/scaling.md needs: per-chunk cost and bytes each way."""

    workers: int
    chunks: int = 0
    frames: int = 0
    worker_seconds: float = 0.0
    sent_bytes: int = 0  # decoded frames (+ payloads) shipped to the workers
    returned_bytes: int = 0  # encoded segments shipped back
    actor_start_s: float = 0.0  # from creating the workers to all of them having set up their plugins
    pids: set = field(default_factory=set)

    def add(self, result: ChunkResult) -> None:
        self.chunks += 1
        self.frames += result.frames
        self.worker_seconds += result.seconds
        self.returned_bytes += os.path.getsize(result.segment) if isinstance(result.segment, Path) else len(result.segment)
        self.pids.add(result.pid)

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "pids"}
        out["worker_processes"] = len(self.pids)
        out["ms_per_frame_worker"] = 1000 * self.worker_seconds / self.frames if self.frames else None
        return out
