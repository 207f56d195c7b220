"""The per-frame runners every command uses: ``FrameRestorer`` (decode side: enhance, pipe, preview, the
ffmpeg chain, --resume and --workers) and ``FrameAnalyzer`` (encode side: encode, encode --base, eval,
--resume and --workers), with the chain loading and side-info collection around them.

One error budget (docs/reliability.md): a plugin that rejects a payload (``PayloadError``) keeps the frame
it was given (a fallback); any other exception, a broken contract (``ContractError``) included, is an error
that ends the job (``PluginErrorPolicy.FAIL``, PluginFailure) or is skipped and counted (``SKIP``). Fallbacks,
errors and damaged input frames together may not exceed ``max_errors`` (None: no limit).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .. import media, rdcost, sideinfo
from ..errors import ContractError, MediaError, PayloadError, PipelineError, PluginError
from ..options import PluginErrorPolicy
from ..plugins import by_side_info_format, get_postprocessor, make_plugin_manager
from ..postprocessor import Context, PostProcessor
from ..types import Frame, StreamInfo, to_bit_depth
from . import declared, periods

Progress = Callable[[int, int | None], None]


def no_progress(done: int, total: int | None) -> None:
    """A Progress that shows nothing."""


class PluginFailure(PipelineError):
    """A plugin raised something other than PayloadError and the policy is ``fail``."""


# ---------------------------------------------------------------- the chain and its side info


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
        raise MediaError(f"cannot read side info {sidecar}: {exc.strerror}") from None
    index.add(*sideinfo.read_sidecar(blob))
    return index


def choose_postprocessors(
    index: sideinfo.RecordIndex, plugins: list[str] | None, plan: declared.DeclaredPlan | None = None
) -> tuple[list[str], list[str]]:
    """(names, warnings): the post-processors asked for (``none`` dropped), or, when None, the chain the
    stream declares (``plan``: NNPFC or a chain record) or else those whose side-info format ``index``
    holds, an update format counting for its plugin (what ``enhance`` does without ``--plugin``)."""
    warnings: list[str] = []
    if plugins is None and plan is not None and (plan.declared or plan.unknown):
        names, warnings = list(plan.names), list(plan.warnings)
    elif plugins is None:
        known = by_side_info_format()
        formats = list(dict.fromkeys(sideinfo.base_format(f) for f in index.formats() if f != sideinfo.CHAIN_FORMAT))
        names = [known[f].cls.name for f in formats if f in known]
        unknown = [f for f in formats if f not in known]
        if unknown:
            warnings.append(f"side info for {', '.join(unknown)} found but no installed plugin reads it")
    else:
        names = [n for n in plugins if n != "none"]
    if not names and plugins is None:  # chosen by the stream; not when asked for none (--plugin none)
        warnings.append("no post-processor applies (no --plugin, no side info for an installed one): frames pass through unchanged")
    return names, warnings


# ---------------------------------------------------------------- restore


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
    decode: dict = field(default_factory=dict)  # genpost.media.damage.DecodeDamage of the input
    resumed_from: int = 0  # frames a previous --resume run had finished
    workers: dict = field(default_factory=dict)  # --workers > 1: chunks, seconds, bytes each way (genpost.jobs.distributed)
    output_coding: str = ""  # enhance: how the video was written, e.g. "libx265 lossless", "libx265 crf 12", "copy"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class FrameRestorer:
    """The per-frame policy of every restoring command: run the chain on a frame, count fallbacks, plugin
    errors and the input's damage, and stop past ``max_errors``.

    ``inp``: where frames come from (anything with ``path`` and ``damage``, a genpost.media.damage.DecodeDamage),
    or None when the caller counts no decode damage (a y4m pipe). ``plan``: a declared chain
    (genpost.runner.declared.DeclaredPlan), which activates each plugin on some frames only (NNPFA)."""

    def __init__(
        self, chain, index, ctx: Context, report: EnhanceReport, inp: Any = None, max_errors: int | None = None,
        on_plugin_error: PluginErrorPolicy = PluginErrorPolicy.SKIP, plan=None,
    ):  # fmt: skip
        self.chain, self.index, self.ctx, self.report, self.inp = chain, index, ctx, report, inp
        self.max_errors, self.on_plugin_error = max_errors, PluginErrorPolicy(on_plugin_error)
        self.plan = plan
        self.errors = 0  # plugin runs that did not give a frame (fallbacks and errors)

    @property
    def damaged(self) -> int:
        return self.inp.damage.frames if self.inp is not None else 0

    def __call__(self, frame: Frame) -> Frame:
        restored, failed = self.restore(frame)
        self.errors += failed
        if self.max_errors is not None and self.errors + self.damaged > self.max_errors:
            damaged = f" and {self.damaged} input frames are damaged" if self.inp is not None else ""
            raise PipelineError(
                f"{self.errors} frames failed to restore{damaged}: more than --max-errors {self.max_errors}"
            )
        return restored

    def frames(
        self, frames, bit_depth: int | None = None, progress: Progress = no_progress, total: int | None = None
    ) -> Iterator[Frame]:
        """Each of ``frames`` restored (at ``bit_depth`` if given), counted into the report's frames."""
        for frame in frames:
            restored = self(frame)
            self.report.frames += 1
            progress(self.report.frames, total)
            yield to_bit_depth(restored, bit_depth) if bit_depth else restored

    def check_input(self) -> None:
        if self.inp is None:
            return
        damage = self.inp.damage
        if self.max_errors is not None and self.errors + damage.frames > self.max_errors:
            raise MediaError(
                f"{self.inp.path}: {damage.first}; {damage.frames} damaged frames"
                + (f" and {self.errors} failed restorations" if self.errors else "")
                + f", more than --max-errors {self.max_errors}"
            )

    def finish(self) -> None:
        """Put the input damage and plugin errors into the report."""
        if self.inp is not None:
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

    def restore(self, frame: Frame) -> tuple[Frame, int]:
        """(the frame through the chain, how many plugins did not restore it), outside the budget.

        A plugin that rejects its payload leaves the frame as it was (a fallback). A plugin that raises
        anything else, or breaks the contract, is named: with ``PluginErrorPolicy.FAIL`` the job ends
        (PluginFailure), with ``SKIP`` the frame keeps what that plugin was given and the error is counted.
        """
        failed = 0
        ctx = self.ctx
        for proc in self.chain:
            stats = self.report.per_plugin[proc.name]
            if self.plan is not None and not self.plan.active(proc.name, frame.index):
                stats.off += 1
                continue
            payload = self.index.get(proc.side_info, frame.index) if proc.side_info else None
            if proc.side_info:  # the content-adaptive update in force for this frame's period, if any
                update = self.index.get(sideinfo.update_format(proc.side_info), frame.index)
                ctx = dataclasses.replace(self.ctx, update=update)
            stats.frames += 1
            stats.with_side_info += payload is not None
            try:
                out = proc.restore(frame, payload, ctx)
                check_restored(proc, frame, out)
            except PayloadError:
                stats.fallbacks += 1
                failed += 1
                continue
            except Exception as exc:  # an untrusted plugin's bug (or broken contract) must not cost the user the job
                message = f"plugin {proc.name} failed on frame {frame.index}: {type(exc).__name__}: {exc}"
                if self.on_plugin_error == PluginErrorPolicy.FAIL:
                    raise PluginFailure(message.splitlines()[0]) from exc
                stats.errors += 1
                stats.first_error = stats.first_error or message.splitlines()[0]
                failed += 1
                continue
            frame = out
        return frame, failed


def check_restored(proc, before: Frame, after: Frame) -> None:
    """ContractError unless ``after`` is a Frame like ``before``: the contract kit's own check
    (``genpost.contract.check_restored_frame``: planes, dtypes, bit depth, index, pts, time base, range)."""
    from ..contract import ContractViolation, check_restored_frame

    try:
        check_restored_frame(before, after, proc.name)
    except ContractViolation as exc:
        raise ContractError(str(exc)) from None


# ---------------------------------------------------------------- analyze


def _as_decoder_restores(proc, payload: bytes, ctx: Context, frame: Frame) -> Frame:
    """``proc``'s restoration of ``frame`` with the payload it just chose (none: its default mode), as the
    decoder's chain will give it to the next plugin; a payload it rejects or an error leaves the frame."""
    try:
        out = proc.restore(frame, payload or None, ctx)
        check_restored(proc, frame, out)
        return out
    except Exception:  # the decoder falls back to the frame as given; the analyze error is already counted
        return frame


@dataclass
class AnalysisJob:
    """What ``FrameAnalyzer`` needs: the source and the decoded base (files, or frames given to ``run``),
    the plugins, and the error budget. ``errors`` (frames skipped per plugin) is filled in as it runs."""

    source: str | os.PathLike | None
    base_path: str | os.PathLike | None
    chain: list[PostProcessor]
    settings: media.EncoderSettings
    info: StreamInfo
    carriage: str
    total: int
    options: dict[str, str] = field(default_factory=dict)
    fps: Fraction | None = None
    max_errors: int | None = 0
    on_plugin_error: PluginErrorPolicy = PluginErrorPolicy.FAIL
    errors: dict[str, int] = field(default_factory=dict)
    damage: Any = None  # genpost.media.damage.DecodeDamage of frames given to ``run`` (else the source file's)
    # plugins whose default mode changed a frame the encoder left without a record: only for them must a
    # record carriage declare the chain (genpost.runner.declared); None until ``FrameAnalyzer.run`` has looked
    default_acts: set[str] | None = None

    def __post_init__(self) -> None:
        self.on_plugin_error = PluginErrorPolicy(self.on_plugin_error)  # a caller's "fail" or "skip" too

    @property
    def qp(self) -> int | None:
        s = self.settings
        return s.qp if s.qp is not None else (None if s.crf is None else int(round(s.crf)))


def default_mode_acts(proc: PostProcessor, decoded: Frame, ctx: Context) -> bool:
    """Whether ``proc``'s default mode (restore without a payload) changes ``decoded``: a frame the encoder
    left without a record needs the chain declared only then. A plugin that raises counts as acting."""
    try:
        out = proc.restore(decoded, None, ctx)
    except Exception:  # the decoder would run it; declare it
        return True
    return out is not decoded and any(not np.array_equal(a, b) for a, b in zip(out.planes, decoded.planes))


@dataclass
class Step:
    """One side-info plugin's choice on one frame: its payload, the context it chose in and the frame it
    was given (the decode as the plugins before it restore it)."""

    proc: PostProcessor
    payload: bytes
    ctx: Context
    given: Frame


@dataclass
class ChainState:
    """What analyzing a frame along the chain needs besides the frames: the runs in force (a payload equal
    to its run's extends it at no cost), the periods' updates and the base's mean bits per frame."""

    job: AnalysisJob
    current: dict[str, list]
    updates: periods.Updates
    base_bits: float | None

    def context(self, proc: PostProcessor, index: int) -> Context:
        job, run = self.job, self.current.get(proc.side_info or "")
        live = run is not None and run[1] + run[3] == index and run[3] < sideinfo.MAX_RUN
        return Context(
            stream=job.info,
            qp=job.qp,
            options=job.options,
            previous_payload=run[2] if live and run is not None else None,
            record_overhead_bits=8 * sideinfo.record_overhead_bytes(proc.side_info, job.carriage),
            update=self.updates.in_force(proc.side_info, index),
            base_bits=self.base_bits,
        )

    @staticmethod
    def bits(step: Step) -> float:
        """What sending the step's payload costs: nothing for none or one that extends the run in force."""
        if not step.payload or step.payload == step.ctx.previous_payload:
            return 0.0
        return step.ctx.record_overhead_bits + 8.0 * len(step.payload)


class FrameAnalyzer:
    """Decode the base as a decoder will and let each plugin compute its payload per frame.

    A plugin that returns the payload already in force extends that record over this frame (a run),
    so a payload that stays right costs its carriage overhead once, not once per frame. A plugin that
    raises fails the job (``PluginErrorPolicy.FAIL``) or sends nothing for that frame (``SKIP``, counted in
    ``job.errors``); damaged source frames and such failures together may not exceed ``max_errors``."""

    joint = True  # a chain's earlier plugins may be kept quiet where the chain does better so (choose_path)

    def __init__(self, job: AnalysisJob):
        self.job = job

    def failed(self, proc, what: str, exc: Exception) -> None:
        job = self.job
        message = f"plugin {proc.name} failed to {what}: {type(exc).__name__}: {exc}".splitlines()[0]
        if job.on_plugin_error == PluginErrorPolicy.FAIL:
            raise PluginFailure(message) from exc
        job.errors[proc.name] = job.errors.get(proc.name, 0) + 1
        damaged = job.damage.frames if job.damage else 0
        if job.max_errors is not None and sum(job.errors.values()) + damaged > job.max_errors:
            raise PipelineError(f"{message}; more than --max-errors {job.max_errors}") from exc

    def analyze_path(self, state: ChainState, original: Frame, decoded: Frame, quiet: PostProcessor | None = None,
                     output: bool = False) -> tuple[list[Step], Frame | None] | None:  # fmt: skip
        """Each side-info plugin's payload along the chain, each choosing on what the decoder will give it
        (the plugins before it restoring with their payloads), and with ``output`` the chain's output.
        ``quiet``: a plugin that sends nothing on this path; a path other than the greedy one (``quiet``
        set) that meets a plugin error is None (the greedy path has counted or raised it)."""
        job, steps, previous = self.job, [], None
        for proc in job.chain:
            if previous is not None:  # a later plugin analyzes what the decoder will give it
                decoded = _as_decoder_restores(*previous, decoded)
            if not proc.side_info:
                previous = (proc, b"", Context(stream=job.info, qp=job.qp, options=job.options))
                continue
            ctx = state.context(proc, decoded.index)
            payload = b""
            if proc is not quiet:
                try:
                    payload = bytes(proc.analyze(original, decoded, ctx) or b"")
                except Exception as exc:  # an untrusted plugin's bug, reported by name
                    if quiet is not None:
                        return None
                    self.failed(proc, f"analyze frame {decoded.index}", exc)
            steps.append(Step(proc, payload, ctx, decoded))
            previous = (proc, payload, ctx)
        if output and previous is not None:
            decoded = _as_decoder_restores(*previous, decoded)
        return steps, decoded if output else None

    def choose_path(self, state: ChainState, original: Frame, decoded: Frame) -> list[Step]:
        """The greedy path (each plugin its own best payload on what it is given) or, in a chain of several
        side-info plugins, that path with one earlier plugin sending nothing, where the chain's output is
        better so (``rdcost.best``: per-plane SSE of the output, every payload's bits): a learned plugin's
        restoration can leave less for wiener to correct than the decode did, and then the chain should not
        be worse than wiener alone."""
        senders = [p for p in self.job.chain if p.side_info] if self.joint else []
        greedy = self.analyze_path(state, original, decoded, output=len(senders) > 1)
        assert greedy is not None  # the greedy path raises or counts instead
        paths = [greedy]
        for quiet in senders[:-1]:
            if any(s.proc is quiet and s.payload for s in greedy[0]):
                alternative = self.analyze_path(state, original, decoded, quiet=quiet, output=True)
                if alternative is not None:
                    paths.append(alternative)
        if len(paths) == 1:
            return greedy[0]
        base = rdcost.plane_sse(original, decoded)
        fallback = Context(stream=self.job.info, qp=self.job.qp).lagrangian
        lambdas = rdcost.plane_lambdas(base, state.base_bits, fallback)
        costs = [(rdcost.plane_sse(original, out), sum(map(state.bits, steps))) for steps, out in paths]  # type: ignore[arg-type]
        return paths[rdcost.best(costs, base, lambdas)][0]

    def run(self, progress: Progress = no_progress, sources=None, bases=None):
        """(records, pts -> frame index). ``sources``/``bases``: frames given by the caller (genpost.jobs.resume,
        one chunk at a time, with the shipped weights); else both files are decoded here."""
        job = self.job
        runs: list[list] = []  # [format_id, first frame, payload, count]
        current: dict[str, list] = {}
        pts_index: dict[int, int] = {}
        total, info, options, qp = job.total, job.info, job.options, job.qp
        acts = job.default_acts = set() if job.default_acts is None else job.default_acts  # across chunks (resume)

        base_bits = None  # the base's mean bits per frame, where its file is at hand
        if job.base_path is not None and os.path.isfile(job.base_path) and total:
            base_bits = 8 * os.path.getsize(job.base_path) / total

        updates = periods.Updates()  # content-adaptive weight updates, one per plugin and period
        phases = 2  # the progress bar: base encode, then analysis (and adaptation before it, when any)
        if sources is None and periods.adaptive(job.chain):
            phases = 3
            updates = periods.plan(
                job.chain, job.source, job.base_path, job.fps, info,
                Context(stream=info, qp=qp, options=options, base_bits=base_bits), job.carriage,
                lambda proc, exc: self.failed(proc, "adapt", exc),
                lambda n, m: progress(total + total * n // max(m, 1), phases * total),
            )  # fmt: skip
        with contextlib.ExitStack() as files:
            if sources is None:
                src = files.enter_context(media.InputFile(job.source, job.fps))
                src.max_errors = job.max_errors
                sources, job.damage = src.frames(), src.damage
            if bases is None:
                bases = files.enter_context(media.InputFile(job.base_path)).frames()
            for decoded in bases:
                original = next(sources, None)
                if original is None:
                    raise PipelineError("the base has more frames than the source")
                pts_index[decoded.pts] = decoded.index
                original = to_bit_depth(original, info.bit_depth)
                for step in self.choose_path(ChainState(job, current, updates, base_bits), original, decoded):
                    proc, payload, run = step.proc, step.payload, current.get(step.proc.side_info or "")
                    if not payload:
                        current.pop(proc.side_info or "", None)
                        if proc.default_mode and proc.name not in acts and default_mode_acts(proc, step.given, step.ctx):
                            acts.add(proc.name)
                    elif run is not None and step.ctx.previous_payload is not None and payload == run[2]:
                        run[3] += 1
                    else:
                        current[proc.side_info or ""] = run = [proc.side_info, decoded.index, payload, 1]
                        runs.append(run)
                progress((phases - 1) * total + decoded.index + 1, phases * total)
        records = updates.records + [sideinfo.Record(fid, first, payload, count) for fid, first, payload, count in runs]
        return records, pts_index
