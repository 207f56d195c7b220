"""The decode session: given an input (and its sidecar), which post-processors run on which frames, with
which options and payloads. Every restoring route asks it, so they cannot disagree: ``enhance``, the FFmpeg
route (``--chain``, ``--vf-pre``/``--vf-post``), ``preview``, ``pipe``, eval (through ``enhance``) and each
Ray worker (which gets the session's options and activation plan with its chunk).

What it resolves, in this order: the records of every carriage (SEI, data track, BlockAdditional) and the
sidecar; the H.274 NNPFC/NNPFA declaration (with the record offset of a stream entered mid-way); the
``genpost/chain`` record where no NNPFC declares the chain; the post-processors (asked for, declared, or
named by the records' formats); their options (the stream's default-mode options, the user's on top); and
the activation per picture (NNPFA) that gates them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from .. import media, sideinfo
from ..options import PluginErrorPolicy
from ..postprocessor import Context, PostProcessor
from ..types import StreamInfo
from . import declared
from .loop import (
    EnhanceReport,
    FrameRestorer,
    PluginStats,
    choose_postprocessors,
    collect_side_info,
    load_postprocessors,
    read_sidecar_index,
)


@dataclass
class DecodeSession:
    index: sideinfo.RecordIndex
    names: list[str]
    chain: list[PostProcessor]
    options: dict[str, str]  # the stream's default-mode options, the user's on top
    gate: declared.DeclaredPlan | None  # per-picture activation of a declared chain (None: records alone decide)
    warnings: list[str] = field(default_factory=list)
    plan: declared.DeclaredPlan | None = None
    signalled: sideinfo.DeclaredChain | None = None
    found: sideinfo.StreamChain | None = None

    @classmethod
    def open(
        cls, inp: media.InputFile | None, sidecar: str | os.PathLike | None = None, plugins: list[str] | None = None,
        options: dict[str, str] | None = None, device: str = "cpu",
    ) -> "DecodeSession":  # fmt: skip
        """The session of ``inp`` (None: a y4m pipe, whose only side info is the sidecar). ``plugins``:
        forced post-processors (the stream's declaration is then not read), None: what the stream says."""
        if inp is not None:
            index = collect_side_info(inp, sidecar)
        else:
            index = read_sidecar_index(sidecar) if sidecar else sideinfo.RecordIndex()
        signalled = declared.read_declared(inp) if plugins is None and inp is not None else None
        plan = declared.plan(signalled) if signalled is not None else None
        if signalled is not None and signalled.record_offset:  # entered mid-stream: records name the whole stream's frames
            index = declared.shift_records(index, signalled.record_offset)
        found = declared.read_chain(index)  # a chain record (record carriages); NNPFC, when there, wins
        if plugins is None and found.plugins and not (plan is not None and (plan.declared or plan.unknown)):
            plan = declared.chain_plan(found)
        names, warnings = choose_postprocessors(index, plugins, plan)
        if plugins is None and found.malformed and not found.plugins:
            warnings.append(
                f"the stream's chain declaration is damaged ({found.malformed} of {found.copies} copies, none whole): "
                "the plugins its records name run instead"
            )
        gate = plan if plan is not None and plan.declared else None
        merged = {**gate.options, **dict(options or {})} if gate is not None else dict(options or {})
        chain = load_postprocessors(names, device)
        return cls(index, names, chain, merged, gate, warnings, plan, signalled, found)

    def report(self, output: str | os.PathLike, cls: Any = EnhanceReport) -> Any:
        """A new report of a job restoring with this session (its warnings first)."""
        return cls(str(output), 0, list(self.names), {p.name: PluginStats() for p in self.chain},
                   warnings=list(self.warnings))  # fmt: skip

    def context(self, stream: StreamInfo) -> Context:
        """The context every frame restores with (the base's QP is unknown at the decoder)."""
        return Context(stream=stream, options=dict(self.options))

    def restorer(
        self, stream: StreamInfo, report, inp: Any = None, max_errors: int | None = None,
        on_plugin_error: PluginErrorPolicy = PluginErrorPolicy.SKIP,
    ) -> FrameRestorer:
        """The one restore loop and error budget, with the declared chain's activation per picture."""
        return FrameRestorer(self.chain, self.index, self.context(stream), report, inp, max_errors, on_plugin_error, self.gate)

    def side_info_report(self) -> dict:
        """What the report says of the side info: records per format, the declared chain, the chain record."""
        out = self.index.stats()
        if self.plan is not None and (self.plan.declared or self.plan.unknown):
            out["declared"] = self.plan.summary()
        if self.found is not None:
            out["chain"] = self.found.to_dict()
        if self.signalled is not None:
            out["nnpf"] = self.signalled.stats()
        return out
