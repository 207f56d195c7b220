"""Side info for a base someone else encoded (``genpost encode SOURCE --base STREAM``): decode the base as
a decoder will, run the plugins' ``analyze`` against the source, and write the base's own packets back with
the side info added. The base bitstream is not re-encoded, so a plain decoder's output stays bit-identical.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from .. import media, sideinfo
from ..errors import PipelineError
from ..options import Carriage
from ..runner import declared
from ..runner.loop import Progress, load_postprocessors
from .encode import EncodeReport, analyze_stream, mux_with_side_info, summarize_records
from .outputs import atomic_output, check_paths, default_sidecar


class BaseMismatchError(PipelineError):
    """SOURCE and the --base STREAM are not the same video (picture size or frame count)."""

    exit_code = 2


def _check_match(src: media.InputFile, base: media.InputFile, base_frames: int) -> None:
    s, b = src.info, base.info
    if (s.width, s.height) != (b.width, b.height):
        raise BaseMismatchError(f"--base is {b.width}x{b.height} but the source is {s.width}x{s.height}")
    source_frames = s.frames if s.frames is not None else sum(1 for _ in src.frames())
    if source_frames != base_frames:
        raise BaseMismatchError(f"--base has {base_frames} frames but the source has {source_frames}")


def encode_with_base(
    source: str | os.PathLike,
    base: str | os.PathLike,
    output: str | os.PathLike,
    *,
    plugins: list[str],
    carriage: Carriage = Carriage.SEI,
    sidecar: str | os.PathLike | None = None,
    qp: int | None = None,
    fps: Fraction | None = None,
    options: dict[str, str] | None = None,
    progress: Progress = lambda done, total: None,
) -> EncodeReport:
    """Add side info to ``base`` (raw .265/.266 or a container) as ``carriage`` says; ``qp`` is the base's
    QP where the caller knows it (plugins weigh their rate with it)."""
    carriage = Carriage.parse(carriage, "--carriage")
    sidecar = str(sidecar) if sidecar else (default_sidecar(output) if carriage == "sidecar" else None)
    check_paths([p for p in (source, base, sidecar) if p is not None], output)
    options = dict(options or {})
    with media.InputFile(base, fps) as inp:
        codec, info, raw = inp.sei_codec, inp.info, inp.raw_format
        units = inp.packet_frames()
        if codec is None:
            raise media.MediaError(f"{base}: --base must be HEVC or VVC, not {info.codec}")
        frames = sum(1 for _, f, _ in units if f is not None)
        with media.InputFile(source, fps or info.rate) as src:
            _check_match(src, inp, frames)
    out_raw = media.output_format(output) in ("hevc", "vvc")
    if raw and not out_raw:
        raise PipelineError(f"a raw --base is written back raw: give -o a {Path(base).suffix} name")
    if out_raw and media.output_format(output) != {"hevc": "hevc", "vvc": "vvc"}[codec]:
        raise PipelineError(f"-o {Path(output).suffix} does not hold {codec}")
    if carriage == "track" and out_raw:
        raise PipelineError("a raw stream has no room for a data track; use --carriage sei, nnpfc or sidecar")
    chain = load_postprocessors(list(plugins))
    acts: set[str] = set()
    records = analyze_stream(source, base, plugins, qp=qp, carriage=carriage, fps=fps, options=options, progress=progress,
                             chain=chain, default_acts=acts)
    signalling = declared.ChainSignalling(chain, records, options, info.width, info.height, frames, acts)
    with atomic_output(output) as tmp:
        if out_raw:
            _write_raw(tmp, units, codec, carriage, records, signalling)
        else:
            with media.InputFile(base, fps) as inp:
                pts_index = {f.pts: f.index for f in inp.frames()}
            mux_with_side_info(base, base, tmp, fps=fps, info=info, carriage=carriage, records=records, pts_index=pts_index,
                               packets=None, signalling=signalling)
        records = signalling.chain_written + records  # the chain declarations, counted as records
        if sidecar:
            with atomic_output(sidecar) as side_tmp, open(side_tmp, "wb") as fh:
                sideinfo.write_sidecar(fh, records)
    return _report(output, frames, info, carriage, sidecar, records)


def _write_raw(path: str, units, codec: str, carriage: str, records, signalling) -> None:
    """Annex-B access units in decode order, each with its frame's SEI (and an AUD first for VVC, so
    FFmpeg's raw parser keeps the SEI on its own picture; docs/bitstream.md)."""
    by_frame: dict[int, list[sideinfo.Record]] = {}
    for r in records:
        by_frame.setdefault(r.frame_index, []).append(r)
    aud = codec == "vvc"
    with open(path, "wb") as fh:
        for k, (data, frame, key) in enumerate(units):
            recs = by_frame.get(frame, []) if frame is not None else []
            if carriage != "nnpfc":  # the chain declaration record, first in the unit, at each keyframe
                recs = signalling.chain_records(frame, key or k == 0) + recs
            messages = signalling.messages(frame, key or k == 0) if carriage == "nnpfc" else []
            if recs and carriage in ("sei", "nnpfc"):
                messages.append(sideinfo.records_message(recs))
            if messages:
                data = sideinfo.insert_nal(data, sideinfo.sei_nal_messages(codec, messages), codec, length_size=0, aud=aud)
            fh.write(data)


def _report(output, frames: int, info, carriage: str, sidecar, records) -> EncodeReport:
    duration = float(frames / info.rate) if info.rate else None
    side = summarize_records(records)
    return EncodeReport(str(output), frames, os.path.getsize(output), *side, carriage, sidecar, duration)
