"""`genpost eval` over a test set: many clips x many plugins in one run, a summary, and a Markdown table.

All clips' points go through ``rd.run_ladders`` together (each anchor encoded and measured once for
all plugins; with ``jobs`` > 1 several points at a time, across clips).
A clip that fails is reported under ``failures`` and the others go on; so does a plugin that fails on one
clip. The summary averages each BD-rate over the clips where it is defined and counts "never worse" losses.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable

from ..errors import PipelineError, one_line
from ..jobs import pipeline
from ..jobs.outputs import atomic_output
from . import pool
from .rd import (
    BD_METRICS,
    DECODER_FORCED,
    DECODER_USER,
    DEFAULT_QPS,
    PLANES,
    chain_of,
    check_ladder,
    deep_metrics,
    prepare_clip,
    run_ladders,
    runs_of,
    versions,
)

VIDEO_SUFFIXES = (".y4m", ".mkv", ".mp4", ".mov", ".webm", ".ts", ".nut")
# the PSNR the summary and the Markdown table lead with: from the sequence's mean MSE, so frames coded
# perfectly (MSE 0, e.g. black) count as what they are instead of a capped 100 dB each
HEADLINE_PSNR = "psnr_y_mse"


class MissingInput(PipelineError):
    """A clip or folder given to eval does not exist, or a folder holds no clip."""

    exit_code = 3


def collect_sources(paths: list[str]) -> list[str]:
    """The clips to evaluate: files as given, folders as their video files in name order."""
    out = []
    for path in paths:
        p = Path(path)
        if p.is_dir():
            clips = sorted(str(c) for c in p.iterdir() if c.is_file() and c.suffix.lower() in VIDEO_SUFFIXES)
            if not clips:
                raise MissingInput(f"{path} holds no video file ({', '.join(VIDEO_SUFFIXES)})")
            out += clips
        elif p.is_file():
            out.append(str(p))
        else:
            raise MissingInput(f"{path} does not exist")
    return out


def evaluate_set(sources: list[str], plugins: list[str], qps=DEFAULT_QPS, *, preset: str = "medium",
                 bit_depth: int | None = None, options: dict[str, str] | None = None,
                 progress: Callable[[str], None] = lambda msg: None, fps=None, frames: int | None = None,
                 carriage: str = pipeline.DEFAULT_CARRIAGE, force_plugin: bool = False, jobs: int = 1,
                 metrics: tuple[str, ...] = ()) -> dict:  # fmt: skip
    """``{"runs": [one per clip x plugin], "summary": {plugin: ...}, "failures": [...], ...}``; genpost's
    points are the user's flow (``rd.evaluate``), or with ``force_plugin`` the plugin forced at the decoder.
    ``jobs`` points run at a time (0: one per core, ``pool``), across clips."""
    check_ladder(qps, None, frames, carriage, jobs)
    pipeline.load_postprocessors([m for p in plugins for m in chain_of(p)])  # unknown plugins fail before any clip
    failures, clips = [], []
    with contextlib.ExitStack() as stack:
        for i, source in enumerate(sources):
            label = f"[{i + 1}/{len(sources)}] {Path(source).name}: "
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="genpost-eval-"))
            try:
                clips.append(prepare_clip(source, tmp, plugins=plugins, qps=qps, preset=preset, bit_depth=bit_depth,
                                          options=options, streams=None, fps=fps, frames=frames,
                                          carriage=carriage, force=force_plugin, label=label, metrics=metrics))  # fmt: skip
            except Exception as exc:  # one clip's failure is reported; the set goes on
                failures.append(_failed(source, None, one_line(exc), label, progress))
        ladders = run_ladders(clips, pool.auto_jobs() if jobs == 0 else jobs, progress)
    runs = []
    for lad in ladders:
        if lad.error is not None:
            failures.append({"source": lad.clip.name, "plugin": None, "error": lad.error})
            continue
        runs += runs_of(lad)
        failures += [{"source": lad.clip.name, "plugin": p, "error": e} for p, e in lad.failures.items()]
    return {
        "clips": sources,
        "plugins": plugins,
        "qps": list(qps),
        "frames": frames,
        "carriage": carriage,
        "decoder": DECODER_FORCED if force_plugin else DECODER_USER,
        "runs": runs,
        "summary": summarize(runs, plugins),
        "failures": failures,
        "unavailable": {n: s for n, s in deep_metrics(tuple(metrics)).items() if not callable(s)},
        "versions": versions(),
    }


def _failed(source: str, plugin: str | None, error: str, label: str, progress: Callable[[str], None]) -> dict:
    progress(f"{label}failed: {error}")
    return {"source": source, "plugin": plugin, "error": error}


def summarize(runs: list[dict], plugins: list[str]) -> dict:
    """Per plugin: each BD-rate's mean over the clips where it is defined (and how many), and per plane the
    clips (``losses``) and clip x QP points (``lost_points``) where restored PSNR fell below the anchor's."""
    out = {}
    for plugin in plugins:
        mine = [r for r in runs if r["plugin"] == plugin]
        bd, defined = {}, {}
        for key in BD_METRICS:
            values = [r["bd_rate"][key] for r in mine if r["bd_rate"][key] is not None]
            bd[key] = sum(values) / len(values) if values else None
            defined[key] = len(values)
        out[plugin] = {
            "clips": len(mine),
            "bd_rate": bd,
            "bd_rate_clips": defined,
            "losses": {p: sum(any(p in v["worse"] for v in r["vs_anchor"]) for r in mine) for p in PLANES},
            "lost_points": {p: sum(p in v["worse"] for r in mine for v in r["vs_anchor"]) for p in PLANES},
            "bd_losses": {p: sum(p in r.get("bd_worse", ()) for r in mine) for p in PLANES},
            "never_worse_broken": sum(not r["never_worse"]["holds"] for r in mine if "never_worse" in r),
            "headline_psnr": HEADLINE_PSNR,
        }
    return out


# ---------------------------------------------------------------- reports


def text_lines(full: dict) -> list[str]:
    """The plain-text report of ``genpost eval`` without --json: per QP the two points and the deltas
    (WORSE where a plane lost), the BD-rates, unavailable metrics and failures."""
    lines = []
    for result in full["runs"][:1]:
        lines.append(f"genpost's points: encode --carriage {result['carriage']}, restored {result['decoder']}")
    for result in full["runs"]:
        lines.append(f"{result['source']} / {result['plugin']}:")
        anchor = "x265" if result["anchor_kind"] == "x265" else "anchor"
        for a, g, d in zip(result["anchor"], result["genpost"], result["vs_anchor"]):
            worse = f" WORSE {','.join(d['worse']).upper()}" if d["worse"] else ""
            lines.append(
                f"  QP {a['qp']}: {anchor} {a['kbps']:.2f} kbps {a['psnr_y_mse']:.3f} dB VMAF-NEG {a['vmaf_neg']:.2f} | "
                f"genpost {g['kbps']:.2f} kbps (side info {g['side_info_kbps']:.2f}) {g['psnr_y_mse']:.3f} dB "
                f"VMAF-NEG {g['vmaf_neg']:.2f} | dB Y/U/V {d['delta_psnr_y']:+.3f}/{d['delta_psnr_u']:+.3f}/"
                f"{d['delta_psnr_v']:+.3f}{worse}"
            )
        bd = ", ".join(f"{k} {'n/a' if v is None else f'{v:+.2f}%'}" for k, v in result["bd_rate"].items())
        lines.append(f"  BD-rate: {bd}")
        for g in result["genpost"]:
            d = g.get("default_output")
            if d and "error" in d:
                lines.append(f"  default enhance output at QP {g['qp']}: FAILED: {d['error']}")
            elif d:  # enhance with every default, once per run
                deltas = "/".join(f"{d[f'psnr_{p}_output'] - d[f'psnr_{p}_input']:+.3f}" for p in PLANES)
                flag = f" WORSE {','.join(d['worse']).upper()}" if d["worse"] else ""
                lines.append(f"  default enhance output at QP {g['qp']}: {d['coding']}, {d['bytes']} bytes, "
                             f"dB Y/U/V vs its input {deltas}{flag}")  # fmt: skip
        if result.get("bd_worse"):
            lines.append(f"  WORSE AT EQUAL RATE: PSNR BD-rate above 0 on {','.join(result['bd_worse']).upper()}")
        promise = result.get("never_worse")
        if promise and promise["axis"] == "perception":
            verdict = "holds" if promise["holds"] else "BROKEN: " + "; ".join(promise["failures"])
            cost = "/".join(_pct(promise["psnr_bd_rate"][p]) for p in PLANES)
            unmeasured = f" ({', '.join(promise['unmeasured'])} not measured)" if promise["unmeasured"] else ""
            lines.append(f"  never worse on perception{unmeasured}: {verdict}; PSNR BD-rate Y/U/V it costs {cost}")
    lines += [f"{name} n/a: {reason}" for name, reason in full.get("unavailable", {}).items()]
    lines += [f"FAILED {f['plugin'] or 'clip'} on {f['source']}: {f['error']}" for f in full["failures"]]
    return lines


COLUMNS = (
    ("psnr_y_mse", "PSNR-Y"), ("psnr_y", "PSNR-Y frame mean"), ("psnr_u_mse", "PSNR-U"), ("psnr_v_mse", "PSNR-V"),
    ("ms_ssim", "MS-SSIM"), ("xpsnr", "XPSNR"), ("vmaf", "VMAF"), ("vmaf_neg", "VMAF NEG"), ("haarpsi", "HaarPSI"),
    ("fsim", "FSIM"), ("lpips", "LPIPS"), ("dists", "DISTS"),
)  # fmt: skip


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:+.2f} %"


def markdown(result: dict, command: str | None = None) -> str:
    """BD-rate tables (per run, then the per-plugin means) with the loss counts, failures and notes."""
    head = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "|" + " --- |" * (len(COLUMNS) + 3)
    lines = ["# genpost eval: BD-rate against the anchor (negative = fewer bits for the same quality)", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    runs = result.get("runs") or [{}]
    decoder, carriage = result.get("decoder", runs[0].get("decoder")), result.get("carriage", runs[0].get("carriage"))
    if decoder:
        lines += [f"genpost's points: `genpost encode --plugin NAME --carriage {carriage}`, then restored {decoder}.", ""]
    lines += ["| clip | plugin | " + head[2:] + " worse QPs (Y/U/V) |", rule]
    for run in result["runs"]:
        worse = "/".join(str(sum(p in v["worse"] for v in run["vs_anchor"])) for p in PLANES)
        if run.get("bd_worse"):
            worse += f" BD+ {','.join(run['bd_worse']).upper()}"
        cells = " | ".join(_pct(run["bd_rate"][key]) for key, _ in COLUMNS)
        lines.append(f"| {Path(run['source']).name} | {run['plugin']} | {cells} | {worse} |")
    lines += ["", "Mean over clips (clips with a worse plane at some QP: Y/U/V):", ""]
    lines += ["| plugin | clips | " + head[2:] + " losses (Y/U/V) |", rule]
    for plugin, entry in result["summary"].items():
        cells = " | ".join(_pct(entry["bd_rate"][key]) for key, _ in COLUMNS)
        losses = "/".join(str(entry["losses"][p]) for p in PLANES)
        lines.append(f"| {plugin} | {entry['clips']} | {cells} | {losses} |")
    lines += ["", f"PSNR columns are computed from each sequence's mean MSE except \"{COLUMNS[1][1]}\" (the mean "
              "of per-frame PSNR, 100 dB for a frame coded perfectly). A worse QP: restored PSNR below the "
              "anchor's at the same base (docs/evaluation.md)."]  # fmt: skip
    tools = result.get("versions") or (result["runs"][0]["versions"] if result["runs"] else {})
    plugins = dict.fromkeys(r["versions"]["plugin"] for r in result["runs"] if "plugin" in r.get("versions", {}))
    if tools:
        keys = ("genpost", "av", "libavcodec", "numpy", "python", "ffmpeg_binary", "libvmaf", "torch")
        lines += ["", "Versions: " + ", ".join([*plugins, *(f"{k} {tools[k]}" for k in keys if k in tools)]) + "."]
    for name, reason in result.get("unavailable", {}).items():
        lines.append(f"- {name.upper()} n/a: {reason}")
    for failure in result["failures"]:
        who = f"{failure['plugin']} on " if failure["plugin"] else ""
        lines.append(f"- FAILED {who}{Path(failure['source']).name}: {failure['error']}")
    return "\n".join(lines) + "\n"


def write_markdown(result: dict, path: str | os.PathLike, command: str | None = None) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(markdown(result, command))
