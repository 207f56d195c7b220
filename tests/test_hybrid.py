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
    """Records the luma mean of what it is asked to analyze."""

    name, version, side_info = "seen", "1", "seen/1"
    means: list[float] = []

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        Seen.means.append(float(decoded.y.mean()))
        return b""

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        return decoded


def test_a_later_plugin_analyzes_the_earlier_plugins_restoration(tmp_path):
    base = tmp_path / "base.265"
    with media.InputFile(CARPHONE) as src:
        info = src.info
        with media.OutputFile(base, info, media.EncoderSettings(qp=40, preset="ultrafast")) as out:
            for frame in src.frames():
                out.encode(frame)
    with media.InputFile(base, info.rate) as b:
        plain = [float(f.y.mean()) for f in b.frames()]
    Seen.means = []
    job = AnalysisJob(str(CARPHONE), str(base), [Lift(), Seen()], media.EncoderSettings(qp=40), info, "sei", len(plain),
                      fps=info.rate)  # fmt: skip
    records, _ = FrameAnalyzer(job).run()
    assert len(Seen.means) == len(plain)
    assert all(abs(seen - (p + 3)) < 0.2 for seen, p in zip(Seen.means, plain))  # decode + lift, not the decode
    assert {r.format_id for r in records} == {"lift/1"}
