"""The names genpost's pipeline has always offered, gathered in one place (a facade, nothing of its own).

The code lives by role: genpost.jobs.encode (``encode``), genpost.jobs.enhance (``enhance``, ``inspect``),
genpost.runner.loop (the per-frame ``FrameRestorer`` and ``FrameAnalyzer``, chain loading, side-info
collection), genpost.jobs.schedule (``Schedule``: one pass, resumable chunks or Ray workers), genpost.jobs.outputs (atomic outputs, path checks, sidecar names) and genpost.errors.
"""

from __future__ import annotations

from ..errors import OutputPathError, PipelineError
from ..runner.loop import (
    AnalysisJob,
    EnhanceReport,
    FrameAnalyzer,
    FrameRestorer,
    PluginFailure,
    PluginStats,
    Progress,
    choose_postprocessors,
    collect_side_info,
    load_postprocessors,
    no_progress,
    read_sidecar_index,
)
from .encode import DEFAULT_CARRIAGE, EncodeReport, analyze_stream, encode, mux_with_side_info, summarize_records
from .enhance import enhance, inspect
from .outputs import atomic_output, check_paths, default_sidecar, found_sidecar, provenance
from .schedule import Schedule

__all__ = [
    "DEFAULT_CARRIAGE",
    "AnalysisJob",
    "EncodeReport",
    "EnhanceReport",
    "FrameAnalyzer",
    "FrameRestorer",
    "OutputPathError",
    "PipelineError",
    "PluginFailure",
    "PluginStats",
    "Progress",
    "Schedule",
    "analyze_stream",
    "atomic_output",
    "check_paths",
    "choose_postprocessors",
    "collect_side_info",
    "default_sidecar",
    "encode",
    "enhance",
    "found_sidecar",
    "inspect",
    "load_postprocessors",
    "mux_with_side_info",
    "no_progress",
    "provenance",
    "read_sidecar_index",
    "summarize_records",
]
