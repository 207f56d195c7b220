"""Adaptation periods at the encoder: the first pass that lets plugins tune their weights on the content.

A period runs from one keyframe of the base to the next, so a decoder that starts at any keyframe finds
the period's update in that keyframe's access unit and restores exactly as one that decoded from the
start. This pass walks the source and the base's decode once, keeps an evenly spread, bounded sample of
each period's (source, decoded) pairs, and asks every plugin that implements ``adapt`` for its update.
The per-frame pass (``genpost.jobs.pipeline``) then runs with ``ctx.update`` set to the update in force.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import media, sideinfo
from ..postprocessor import Context, PostProcessor
from ..types import Frame, to_bit_depth

MAX_SAMPLE = 8  # pairs per period handed to ``adapt`` (memory: 8 pairs of 1080p 8-bit frames ~ 50 MB)


def adaptive(chain: list[PostProcessor]) -> list[PostProcessor]:
    """The plugins that send side info and implement ``adapt``."""
    return [p for p in chain if p.side_info and type(p).adapt is not PostProcessor.adapt]


@dataclass
class Period:
    start: int
    count: int = 0
    stride: int = 1
    sample: list[tuple[Frame, Frame]] = field(default_factory=list)

    def add(self, original: Frame, decoded: Frame) -> None:
        """Keep every ``stride``-th pair; past 2 * MAX_SAMPLE, drop every other and double the stride."""
        if self.count % self.stride == 0:
            self.sample.append((original, decoded))
            if len(self.sample) >= 2 * MAX_SAMPLE:
                self.sample, self.stride = self.sample[::2], 2 * self.stride
        self.count += 1

    def spread(self) -> list[tuple[Frame, Frame]]:
        step = max(1, -(-len(self.sample) // MAX_SAMPLE))
        return self.sample[::step]


def cut(source, base_path, fps, info) -> list[Period]:
    """The base's periods with their samples (one decode of source and base)."""
    periods: list[Period] = []
    with media.InputFile(source, fps) as src, media.InputFile(base_path) as base:
        sources = src.frames()
        for decoded in base.frames():
            original = next(sources, None)
            if original is None:
                break
            if not periods or decoded.key_frame or periods[-1].count >= sideinfo.MAX_RUN:
                periods.append(Period(decoded.index))
            periods[-1].add(to_bit_depth(original, info.bit_depth), decoded)
    return periods


@dataclass
class Updates:
    """The updates chosen per plugin format: records to carry, and the one in force for a frame."""

    records: list[sideinfo.Record] = field(default_factory=list)
    spans: dict[str, list[tuple[int, int, bytes]]] = field(default_factory=dict)

    def in_force(self, format_id: str, index: int) -> bytes | None:
        for start, count, payload in self.spans.get(format_id, ()):
            if start <= index < start + count:
                return payload
        return None


def plan(chain, source, base_path, fps, info, ctx: Context, carriage: str, on_error, progress=None) -> Updates:
    """Each adaptive plugin's update for each period. ``on_error(proc, exc)`` decides what a plugin that
    raises costs (re-raise to fail the job; return to send no update for that period)."""
    procs = adaptive(chain)
    updates = Updates()
    if not procs:
        return updates
    periods = cut(source, base_path, fps, info)
    for n, period in enumerate(periods):
        pairs = period.spread()
        for proc in procs:
            side = proc.side_info
            assert side is not None  # adaptive() keeps the plugins that send side info
            fid = sideinfo.update_format(side)
            pctx = replace(
                ctx, period_frames=period.count,
                record_overhead_bits=8 * sideinfo.record_overhead_bytes(fid, carriage),
            )  # fmt: skip
            try:
                payload = bytes(proc.adapt(pairs, pctx) or b"")
            except Exception as exc:  # an untrusted plugin's bug: the caller's policy decides
                on_error(proc, exc)
                payload = b""
            if payload:
                updates.records.append(sideinfo.Record(fid, period.start, payload, period.count))
                updates.spans.setdefault(side, []).append((period.start, period.count, payload))
        if progress is not None:
            progress(n + 1, len(periods))
    return updates
