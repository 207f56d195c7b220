"""A declared chain (a learned plugin followed by wiener, say) is analyzed as the decoder runs it: each
plugin after the first chooses its side info on what the plugins before it give the decoder."""

from __future__ import annotations

import numpy as np
from conftest import CARPHONE

from genpost import Context, Frame, media
from genpost.postprocessor import PostProcessor
from genpost.runner.loop import AnalysisJob, FrameAnalyzer


class Lift(PostProcessor):
    """Adds 3 to luma on frames whose payload says so (default mode: the identity)."""

    name, version, side_info = "lift", "1", "lift/1"

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        return b"\x01"

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if not payload:
            return decoded
        return decoded.with_planes(np.clip(decoded.y.astype(np.int32) + 3, 0, 255).astype(decoded.y.dtype), decoded.u, decoded.v)


class Seen(PostProcessor):
    """Records the luma mean of what it is asked to analyze (per frame, in the order asked)."""

    name, version, side_info = "seen", "1", "seen/1"
    means: dict[int, list[float]] = {}

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        Seen.means.setdefault(decoded.index, []).append(float(decoded.y.mean()))
        return b""

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        return decoded


def _base(tmp_path):
    base = tmp_path / "base.265"
    with media.InputFile(CARPHONE) as src:
        info = src.info
        with media.OutputFile(base, info, media.EncoderSettings(qp=40, preset="ultrafast")) as out:
            for frame in src.frames():
                out.encode(frame)
    with media.InputFile(base, info.rate) as b:
        plain = [float(f.y.mean()) for f in b.frames()]
    return base, info, plain


def _analyze(chain, base, info, frames):
    job = AnalysisJob(str(CARPHONE), str(base), chain, media.EncoderSettings(qp=40), info, "sei", frames, fps=info.rate)
    return FrameAnalyzer(job).run()[0]


def test_a_later_plugin_analyzes_the_earlier_plugins_restoration(tmp_path):
    base, info, plain = _base(tmp_path)
    Seen.means = {}
    _analyze([Lift(), Seen()], base, info, len(plain))
    assert sorted(Seen.means) == list(range(len(plain)))
    # first the chain as each plugin chooses (decode + lift, not the decode), then without the lift
    assert all(abs(Seen.means[i][0] - (p + 3)) < 0.2 for i, p in enumerate(plain))
    assert all(abs(Seen.means[i][1] - p) < 0.2 for i, p in enumerate(plain))


class Nudge(PostProcessor):
    """Halves the error of every plane (it keeps the source the encoder saw): better than the decode,
    worse than what ``Fix`` does from the decode, and ``Fix`` cannot correct it."""

    name, version, side_info = "nudge", "1", "nudge/1"
    sources: dict[int, Frame] = {}

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        Nudge.sources[decoded.index] = source
        return b"\x01"

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        if not payload or decoded.index not in Nudge.sources:
            return decoded
        src = Nudge.sources[decoded.index].planes
        return decoded.with_planes(*[((a.astype(np.int32) + b) // 2).astype(a.dtype) for a, b in zip(decoded.planes, src)])


class Fix(PostProcessor):
    """Puts the source back, but only into a frame it is given untouched by ``Nudge`` (it recognises
    the decode by a checksum the encoder kept): the stand-in for wiener after a network whose output its
    linear filter fits worse."""

    name, version, side_info = "fix", "1", "fix/1"
    sources: dict[int, tuple[Frame, int]] = {}

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        Fix.sources[decoded.index] = (source, int(decoded.y.sum()))
        return b"\x01"

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        source, checksum = Fix.sources.get(decoded.index, (None, -1))
        if not payload or source is None or int(decoded.y.sum()) != checksum:
            return decoded
        return decoded.with_planes(*[p.copy() for p in source.planes])


def test_a_chain_is_never_worse_than_its_later_plugin_alone(tmp_path):
    """An earlier plugin's own best choice can leave the chain worse than the later plugin alone: the
    encoder then has it send nothing on that frame; a chain where it helps keeps it."""
    base, info, plain = _base(tmp_path)
    Fix.sources, Nudge.sources = {}, {}
    assert {r.format_id for r in _analyze([Nudge(), Fix()], base, info, len(plain))} == {"fix/1"}
    assert {r.format_id for r in _analyze([Nudge(), Seen()], base, info, len(plain))} == {"nudge/1"}
