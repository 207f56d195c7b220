"""Rate-distortion evaluation: plain x265 anchor vs genpost (base + every side-info bit) per QP.

Both points are raw Annex-B .265 streams so no container overhead is counted for either side, while the
genpost rate includes the SEI NAL units and record headers that carry its side info.
"""

from __future__ import annotations

import os
import tempfile
from fractions import Fraction

from . import media, metrics, pipeline


def _decode(path, fps=None):
    with media.InputFile(path, fps) as inp:
        return list(inp.frames())


def evaluate(
    source: str | os.PathLike,
    plugin: str,
    qps=(27, 32, 37, 42),
    preset: str = "medium",
    bit_depth: int | None = None,
    options: dict[str, str] | None = None,
    progress=lambda msg: None,
) -> dict:
    with media.InputFile(source) as inp:
        rate = inp.info.rate
        depth = bit_depth or inp.info.bit_depth
    if rate is None:
        raise pipeline.PipelineError(f"{source} has no frame rate")
    reference = _decode(source)
    anchor, genpost = [], []
    with tempfile.TemporaryDirectory(prefix="genpost-eval-") as tmp:
        for qp in qps:
            progress(f"QP {qp}")
            settings = media.EncoderSettings(qp=qp, preset=preset, bit_depth=depth)
            plain = os.path.join(tmp, f"anchor_{qp}.265")
            pipeline.encode(source, plain, settings)
            coded = os.path.join(tmp, f"genpost_{qp}.265")
            report = pipeline.encode(source, coded, settings, [plugin], "sei", options=options)
            restored = os.path.join(tmp, f"restored_{qp}.y4m")
            pipeline.enhance(coded, restored, media.EncoderSettings(codec="y4m"), [plugin], fps=rate)
            frames = len(reference)
            seconds = float(frames / Fraction(rate))
            anchor_kbps = os.path.getsize(plain) * 8 / seconds / 1000
            genpost_kbps = os.path.getsize(coded) * 8 / seconds / 1000
            anchor.append({"qp": qp, "kbps": anchor_kbps, "side_info_kbps": 0.0,
                           **_psnr(reference, _decode(plain, rate))})  # fmt: skip
            genpost.append({"qp": qp, "kbps": genpost_kbps, "side_info_kbps": genpost_kbps - anchor_kbps,
                            "side_info_records": sum(report.records.values()),
                            **_psnr(reference, _decode(restored))})  # fmt: skip
    bd = {
        key: metrics.bd_rate([p["kbps"] for p in anchor], [p[key] for p in anchor],
                             [p["kbps"] for p in genpost], [p[key] for p in genpost])
        for key in ("psnr_y", "psnr_u", "psnr_v")
    }  # fmt: skip
    return {
        "source": str(source),
        "plugin": plugin,
        "preset": preset,
        "bit_depth": depth,
        "anchor": anchor,
        "genpost": genpost,
        "bd_rate": bd,
        "bd_rate_method": "PCHIP on log10(kbps) over the overlapping PSNR interval",
        "versions": media.versions(),
    }


def _psnr(reference, frames) -> dict:
    out = metrics.sequence_psnr(reference, frames)
    out.pop("frames")
    return out
