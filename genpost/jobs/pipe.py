"""``genpost pipe``: restore y4m from stdin to stdout, frame by frame, between two ffmpeg commands.

    ffmpeg -i in.mkv -f yuv4mpegpipe - | genpost pipe --plugin wiener --sideinfo in.mkv.gpsi \\
        | ffmpeg -f yuv4mpegpipe -i - -c:v libx265 out.mkv

Frames are numbered in the order they arrive (ffmpeg writes presentation order), which is the index
side info is keyed by, so a .gpsi sidecar made by ``genpost encode --carriage sidecar`` lines up. Only one
frame is held at a time. The output header is the input's, field for field, plus one extension field
``XGENPOST_POSTPROCESSORS=name/version,...`` (y4m's own metadata slot; readers ignore unknown X fields).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO

from ..media.y4m import PROVENANCE_FIELD, Y4MHeader, Y4MReader, Y4MWriter
from ..options import PluginErrorPolicy
from ..postprocessor import PostProcessor
from ..runner.loop import EnhanceReport
from ..runner.session import DecodeSession
from .outputs import provenance


@dataclass
class PipeReport(EnhanceReport):
    downstream_closed: bool = False  # the reader of our stdout went away before the input ended
    provenance: str | None = None  # the XGENPOST_POSTPROCESSORS value written (for ffmpeg -metadata)


def provenance_value(chain: list[PostProcessor], inherited: str | None = None) -> str | None:
    """``name/version,...`` for this chain, after any an earlier genpost stage recorded."""
    ours = provenance(chain).get("genpost_postprocessors")
    parts = [p for p in (inherited, ours) if p]
    return ",".join(parts) or None


def output_header(header: Y4MHeader, chain: list[PostProcessor], bit_depth: int | None = None) -> Y4MHeader:
    out = header.with_bit_depth(bit_depth or header.bit_depth)
    value = provenance_value(chain, header.extension(PROVENANCE_FIELD))
    return out.with_extension(PROVENANCE_FIELD, value) if value else out


def run(
    instream: BinaryIO,
    outstream: BinaryIO,
    plugins: list[str] | None = None,
    sidecar: str | os.PathLike | None = None,
    options: dict[str, str] | None = None,
    max_errors: int | None = None,
    device: str = "cpu",
    on_plugin_error: PluginErrorPolicy = PluginErrorPolicy.SKIP,
) -> PipeReport:
    """Read y4m from ``instream``, restore each frame, write y4m to ``outstream``; returns the counts.

    Without ``plugins`` the post-processors are the ones whose side-info format the sidecar holds. A
    reader that closes ``outstream`` early (``ffmpeg ... -frames:v N``) ends the job quietly, like ``head``.
    """
    session = DecodeSession.open(None, sidecar, plugins, options, device)  # a pipe's only side info: the sidecar
    chain = session.chain
    reader = Y4MReader(instream, "stdin")
    report = session.report("-", PipeReport)
    try:
        header = output_header(reader.header, chain)
        report.provenance = header.extension(PROVENANCE_FIELD)
        writer = Y4MWriter(outstream, header)
        restorer = session.restorer(reader.header.stream_info("y4m"), report, None, max_errors, on_plugin_error)
        for frame in restorer.frames(reader):
            writer.write(frame)
        writer.flush()
    except BrokenPipeError:
        report.downstream_closed = True
        report.warnings.append(f"stdout closed by its reader after {report.frames} frames")
    report.side_info = session.side_info_report()
    return report
