"""The typer app and its commands. The only place where errors become one-line messages and exit codes.

Exit codes (``genpost.errors.EXIT_CODES``, documented in docs/cli.md): 0 ok, 1 internal error, 2 bad usage, 3 unreadable/
unsupported input, 4 unusable output path, 5 plugin problem, 6 job failed, 130 interrupted. Every option
value is checked before any work starts, and user text (paths, values, pip extras) is printed verbatim:
no console markup is interpreted.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from contextlib import contextmanager
from typing import NoReturn, Optional

import typer

from ..errors import GenpostError
from ..options import Carriage, InBandCarriage, PluginErrorPolicy, PreviewMode, Target
from .checks import check_plugin_options as _check_options
from .checks import check_values as _check
from .checks import encoder_settings as _settings
from .checks import eval_ladder, with_target
from .checks import parse_fps as _fps
from .checks import parse_options as _options
from .support import OneLineErrors, WarningLine, err, plugin_rows, print_version, progress_bar, register_plugin_commands
from .support import line as _line
from .support import out as _out
from .support import plot_name as _plot_name
from .support import print_json as _print_json
from .support import terminate as _terminate

app = typer.Typer(
    help="Generative post-processing for standard HEVC/VVC streams with side information.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=OneLineErrors,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
)
_progress = functools.partial(progress_bar, console=err)


def _warn(message: str) -> None:
    _line("genpost: warning: ", "yellow", message)


def _fail(message: str, code: int) -> NoReturn:
    _line("genpost: error: ", "red", message)
    raise typer.Exit(code)


@app.callback()
def _main_options(
    version: bool = typer.Option(
        False, "--version", callback=print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Generative post-processing for standard HEVC/VVC streams with side information."""


@contextmanager
def _errors():
    """Turn every failure into one line on stderr and a documented exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:
        if os.environ.get("GENPOST_DEBUG"):
            raise
        if not isinstance(exc, GenpostError) or exc.exit_code == 1:  # a bug, not a user's mistake
            _fail(f"internal error: {type(exc).__name__}: {exc}", 1)
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, exc.exit_code)


# options several commands share (one declaration, one help text)
RAW_FPS = typer.Option(None, help="Frame rate for raw .265/.266 inputs.")
PLUGIN_OPTIONS = typer.Option([], "--option", help="Plugin option KEY=VALUE (e.g. strength=0.5).")
DEVICE = typer.Option("cpu", help="Device handed to the plugins' setup (cpu, cuda).")
SKIP_ON_PLUGIN_ERROR = typer.Option(
    PluginErrorPolicy.SKIP, "--on-plugin-error", help="A plugin that raises: skip it for that frame (counted), or fail the job."
)
JSON_REPORT = typer.Option(False, "--json", help="Print the report as JSON on stdout.")
NO_PROGRESS = typer.Option(False, "--quiet", "-q", help="No progress bar.")
# the chunked and parallel runs of encode and enhance
RESUME = typer.Option(False, "--resume", help="Work in GOP-aligned chunks beside the output; rerun with --resume to continue.")
CHUNK_FRAMES = typer.Option(None, "--chunk-frames", help="With --resume or --workers: frames per chunk before the next keyframe (default 240).")
WORKERS = typer.Option(1, "--workers", help="Ray workers for keyframe-aligned chunks (> 1 needs Ray; docs/scaling.md).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="With --workers: a Ray cluster (e.g. auto) instead of a local one.")
TARGET = typer.Option(Target.FIDELITY, "--target", help="What the encoder's choices minimise: fidelity (SSE per plane) or perception (SSE plus a texture term; generative modes can win).")


@app.command()
def encode(
    source: str = typer.Argument(..., help="Original video (y4m or anything PyAV reads)."),
    output: str = typer.Option(..., "-o", "--output", help="HEVC output: .mkv, .mp4, .ts or raw .265."),
    base: Optional[str] = typer.Option(
        None, "--base", help="Add side info to this existing HEVC/VVC stream (raw .265/.266 or a container) "
        "instead of encoding one; its packets are kept as they are. --qp tells the plugins its QP."
    ),
    plugin: list[str] = typer.Option([], "--plugin", "-p", help="Post-processor whose side info to send (repeat)."),
    qp: Optional[int] = typer.Option(None, help="Constant QP for the x265 base."),
    crf: Optional[float] = typer.Option(None, help="CRF for the x265 base (default 28 when no --qp)."),
    preset: str = typer.Option("medium", help="x265 preset."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="Base bit depth: 8 or 10 (default: the source's)."),
    keyint: Optional[int] = typer.Option(None, help="Maximum GOP length in frames."),
    carriage: Carriage = typer.Option(Carriage.SEI, help="Side-info carriage: sei, nnpfc (H.274 NNPFC/NNPFA declaring the chain, records in SEI), track or sidecar."),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Also write a .gpsi sidecar here."),
    fps: Optional[str] = typer.Option(None, help="Frame rate for sources without timing."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE (e.g. wiener.lambda_scale=4)."),
    max_errors: int = typer.Option(
        0, "--max-errors", help="Damaged source frames (concealed) plus plugin failures allowed (default 0: strict)."
    ),
    on_plugin_error: PluginErrorPolicy = typer.Option(
        PluginErrorPolicy.FAIL, "--on-plugin-error", help="A plugin that raises: fail the job, or skip (no side info for that frame)."
    ),
    resume: bool = RESUME,
    chunk_frames: Optional[int] = CHUNK_FRAMES,
    workers: int = WORKERS,
    ray_address: Optional[str] = RAY_ADDRESS,
    target: Target = TARGET,
    as_json: bool = JSON_REPORT,
    quiet: bool = NO_PROGRESS,
):
    """Make the x265 base (or take --base) and carry each plugin's side info with it."""
    with _errors():
        from ..jobs import pipeline
        from ..options import check_range

        _check(max_errors=max_errors, chunk_frames=chunk_frames, workers=workers, keyint=keyint)
        rate, options = _fps(fps), with_target(_options(option), target)
        if base is not None:
            from ..jobs.encode_base import encode_with_base

            check_range("--qp", qp, 0, 63, " (the QP --base was coded with)")
            with _progress("encode", quiet) as progress:
                report = encode_with_base(source, base, output, plugins=plugin, carriage=carriage, sidecar=sideinfo, qp=qp,
                                          fps=rate, options=options, progress=progress)
        else:
            settings = _settings("libx265", bit_depth, qp, crf if crf is not None or qp is not None else 28, preset, keyint)
            with _progress("encode", quiet) as progress:
                report = pipeline.encode(
                    source, output, settings, plugins=plugin, carriage=carriage, sidecar=sideinfo, fps=rate, progress=progress,
                    options=options,
                    max_errors=max_errors, on_plugin_error=on_plugin_error,
                    schedule=pipeline.Schedule(resume=resume, chunk_frames=chunk_frames, workers=workers, ray_address=ray_address),
                )  # fmt: skip
        if as_json:
            _print_json(report.to_dict())
        else:
            side = sum(report.side_info_bytes.values())
            err.print(f"wrote {output}: {report.frames} frames, {report.base_bytes} bytes, side info {side} bytes")


@app.command()
def enhance(
    input: str = typer.Argument(..., help="Stream to restore (HEVC/VVC in MKV/MP4/TS, raw .265/.266, y4m)."),
    output: str = typer.Option(..., "-o", "--output", help="Restored output (.mkv, .mp4, .ts, .y4m, .265)."),
    plugin: list[str] = typer.Option(
        [], "--plugin", "-p", help="Post-processor to run (repeat); 'none' re-muxes. Default: as the side info says."
    ),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Read side info from this .gpsi sidecar."),
    codec: Optional[str] = typer.Option(
        None,
        help="Output codec: libx265, libx264, ffv1, y4m, copy, or vvc (libvvenc through ffmpeg) "
        "(default: libx265, or copy with no plugin).",
    ),
    qp: Optional[int] = typer.Option(None, help="Constant QP for the output encoder."),
    crf: Optional[float] = typer.Option(None, help="CRF for the output encoder (default 18)."),
    preset: Optional[str] = typer.Option(None, help="Encoder preset (default medium)."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="Output bit depth (default: the input's)."),
    fps: Optional[str] = RAW_FPS,
    option: list[str] = PLUGIN_OPTIONS,
    max_errors: Optional[int] = typer.Option(
        None, "--max-errors", help="Fail after this many damaged input frames plus plugin failures (default: no limit)."
    ),
    on_plugin_error: PluginErrorPolicy = SKIP_ON_PLUGIN_ERROR,
    resume: bool = RESUME,
    chunk_frames: Optional[int] = CHUNK_FRAMES,
    workers: int = WORKERS,
    ray_address: Optional[str] = RAY_ADDRESS,
    chain: Optional[str] = typer.Option(
        None, "--chain", help="Chain preset (TOML, e.g. filters/broadcast-hd.toml): FFmpeg filters, plugins, output."
    ),
    vf_pre: Optional[str] = typer.Option(None, "--vf-pre", help="FFmpeg filters before restoring (e.g. deinterlace)."),
    vf_post: Optional[str] = typer.Option(None, "--vf-post", help="FFmpeg filters after restoring (e.g. scale=1280:-2)."),
    as_json: bool = JSON_REPORT,
    quiet: bool = NO_PROGRESS,
):
    """Decode, restore every frame with post-processors, and re-mux with the original streams."""
    with _errors():
        from ..jobs import pipeline
        from ..options import check_encoder

        _check(max_errors=max_errors, chunk_frames=chunk_frames, workers=workers)
        if output.lower().endswith(".y4m"):
            codec = "y4m"
        codec = codec and codec.lower()
        plugins = list(plugin) or None
        rate = _fps(fps)
        if chain or vf_pre or vf_post or codec in ("vvc", "libvvenc"):
            # the ffmpeg route (docs/ffmpeg.md): ffmpeg decode + filters -> restore -> ffmpeg encode
            from ..jobs import chain as chain_mod
            from ..media import ffmpeg_tools

            if qp is not None and crf is not None:
                _fail("give --qp or --crf, not both", 2)
            if codec == "copy":
                _fail("--codec copy cannot carry restored or filtered frames; pick an encoder", 2)
            if resume:
                _fail("--resume works without --chain/--vf-pre/--vf-post and with the PyAV encoders", 2)
            if workers != 1:
                _fail("--workers works without --chain/--vf-pre/--vf-post and with the PyAV encoders", 2)
            check_encoder(codec, qp, crf, preset)
            feature = "--chain" if chain else "--vf-pre" if vf_pre else "--vf-post" if vf_post else f"--codec {codec}"
            ffmpeg_tools.require(feature)
            steps = chain_mod.load(chain) if chain else chain_mod.Chain()
            steps.pre += chain_mod.expand_vf(vf_pre)
            steps.post += chain_mod.expand_vf(vf_post)
            steps.options.update(_options(option))
            _check_options(steps.options)
            cli_profile = chain_mod.OutputProfile(codec, bit_depth, preset, qp, crf)
            with _progress("enhance", quiet) as progress:
                report = chain_mod.enhance(
                    input, output, steps, cli_profile=cli_profile, plugins=plugins, sidecar=sideinfo, fps=rate,
                    progress=progress, max_errors=max_errors,
                    on_plugin_error=on_plugin_error,
                )  # fmt: skip
        else:
            settings = _settings(codec, bit_depth, qp, crf, preset or "medium", None)
            options = _options(option)
            with _progress("enhance", quiet) as progress:
                report = pipeline.enhance(
                    input, output, settings, plugins=plugins, sidecar=sideinfo, fps=rate, options=options, progress=progress,
                    max_errors=max_errors,
                    on_plugin_error=on_plugin_error,
                    schedule=pipeline.Schedule(resume=resume, chunk_frames=chunk_frames, workers=workers, ray_address=ray_address),
                )  # fmt: skip
        for warning in report.warnings:
            _warn(warning)
        if as_json:
            _print_json(report.to_dict())
        else:
            fallbacks = sum(s.fallbacks for s in report.per_plugin.values())
            malformed = report.side_info.get("malformed", 0)
            err.print(
                f"wrote {output}: {report.frames} frames, plugins: {', '.join(report.plugins) or 'none'}, "
                f"fallback frames: {fallbacks}, malformed records: {malformed}, output: {report.output_coding or '-'}"
            )


@app.command()
def inspect(
    input: str = typer.Argument(..., help="Stream to describe."),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Also read this .gpsi sidecar."),
    fps: Optional[str] = RAW_FPS,
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
):
    """Streams, codec, frames, and the side-info records per plugin with their bytes and kbps."""
    with _errors():
        from ..jobs import pipeline

        info = pipeline.inspect(input, _fps(fps), sideinfo)
        for warning in info["warnings"]:
            _warn(warning)
        if as_json:
            _print_json(info)
            return
        v = info["video"]
        out = _out()
        out.print(f"{info['file']}: {info['size_bytes']} bytes")
        rate = f"@ {v['rate']} fps" if v["rate"] else "(fps unknown: raw stream without timing; give --fps)"
        frames = f"{v['frames']} frames" if v["frames"] is not None else "frames unknown"
        out.print(f"  video: {v['codec']} {v['width']}x{v['height']} {v['pix_fmt']} {frames} {rate}")
        for s in info["streams"]:
            out.print(f"  {s['kind']}: {s['codec']} (stream {s['index']}, language {s['language'] or '-'})")
        si = info["side_info"]
        for fmt, entry in si.get("formats", {}).items():
            kbps = f", {entry['kbps']} kbps" if entry.get("kbps") is not None else ""
            out.print(
                f"  side info {fmt}: {entry['records']} records covering {entry['frames']} frames, "
                f"{entry['bytes']} bytes{kbps}"
            )
        if not si.get("formats"):
            out.print("  side info: none")
        for key in ("malformed", "duplicates", "over_cap"):
            if si.get(key):
                out.print(f"  {key} records: {si[key]}")


@app.command()
def plugins(
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout (with each plugin's declared options)."),
    options: bool = typer.Option(False, "--options", help="Also list each plugin's --option keys, defaults and allowed values."),
):
    """Installed post-processors, their versions, side-info formats and where they come from."""
    with _errors():
        rows = plugin_rows()
        if as_json:
            _print_json(rows)
            return
        out = _out()
        for row in rows:
            out.print(
                f"{row['name']} {row['version']}  side info: {row['side_info'] or '-'}  from {row['source']}"
                f"  {row['description']}"
            )
            if options:
                for o in row["options"] or ():
                    out.print(f"    --option {row['name']}.{o['name']}={o['default']}  ({o['allowed']}) {o.get('help', '')}")
                if row["options"] is None:
                    out.print("    (options not declared)")


@app.command("eval")
def eval_(
    sources: list[str] = typer.Argument(..., help="Original clips (y4m or anything PyAV reads) or folders of them."),
    plugin: list[str] = typer.Option(..., "--plugin", "-p", help="Post-processor to evaluate (repeat to compare)."),
    qp: Optional[str] = typer.Option(None, help="Comma-separated x265 QPs (default 27,32,37,42)."),
    stream: list[str] = typer.Option([], "--stream", help="External anchor stream, e.g. a VTM .266 (repeat)."),
    fps: Optional[str] = typer.Option(None, help="Frame rate for kbps and raw --stream files (default: the source's)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Evaluate only the first N source frames."),
    preset: str = typer.Option("medium", help="x265 preset for anchor and base."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="x265 base: 8 or 10 (default: the source's)."),
    option: list[str] = typer.Option(
        [], "--option", help="Plugin option KEY=VALUE for the encoder (as encode --option); the decoder gets only "
        "what the stream carries, unless --force-plugin."
    ),
    carriage: InBandCarriage = typer.Option(InBandCarriage.SEI, help="Side-info carriage of genpost's points, as encode --carriage: sei or nnpfc."),
    force_plugin: bool = typer.Option(False, "--force-plugin", help="Restore with each --plugin forced on every frame "
                                      "(enhance --plugin NAME --option ...), not as the stream declares: not the user's flow."),
    plot: Optional[str] = typer.Option(
        None, "--plot", help="RD curves as PNG (needs matplotlib); with several runs, one PNG per run named PLOT-clip-plugin.png."
    ),
    markdown: Optional[str] = typer.Option(None, "--markdown", help="Write the BD-rate tables as Markdown to this file."),
    target: Target = TARGET,
    metrics: Optional[str] = typer.Option(None, "--metrics", help="Opt-in slow metrics, comma-separated: cvvdp (needs the perception extra)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Points (an anchor or a plugin at one QP of one clip) at a time, in worker processes; 0: one per core (at most 4); 1: all in this process."),
):
    """Rate-distortion and BD-rates of genpost vs an anchor ladder, every side-info bit counted.

    For one clip and plugin or a whole test set; genpost's points are the user's flow: encode --plugin, then
    enhance with no plugin named (what the stream declares)."""
    with _errors():
        from ..eval import plot as rd_plot
        from ..eval import testset
        from ..eval.rd import DEFAULT_QPS, evaluate
        from ..jobs.outputs import check_paths

        qps, opted = eval_ladder(qp, bool(stream), bit_depth, preset, frames, jobs, metrics, DEFAULT_QPS)
        options = with_target(_options(option), target)
        rate = _fps(fps)
        clips = testset.collect_sources(sources)
        single = len(clips) == 1 and len(plugin) == 1 and not os.path.isdir(sources[0])
        if stream and not single:
            _fail("--stream anchors belong to one clip and one plugin", 2)
        for path in (plot, markdown):
            if path is not None:
                check_paths([*clips, *stream], path)
        say, anchors = err.print, list(stream)
        if single:
            result = evaluate(
                clips[0], plugin[0], qps, preset=preset, bit_depth=bit_depth, options=options, progress=say,
                streams=anchors or None,  # type: ignore[arg-type]
                fps=rate, frames=frames, carriage=carriage, force_plugin=force_plugin, jobs=jobs, metrics=opted,
            )  # fmt: skip
            full: dict = {"runs": [result], "summary": testset.summarize([result], plugin), "failures": [],
                          "unavailable": result["unavailable"]}  # fmt: skip
        else:
            full = testset.evaluate_set(
                clips, plugin, qps, preset=preset, bit_depth=bit_depth, options=options, progress=say, fps=rate, frames=frames,
                carriage=carriage, force_plugin=force_plugin, jobs=jobs,
                metrics=opted,
            )  # fmt: skip
            result = full
        wrote = []  # said last, after the results, so the paths are not lost among the progress lines
        if plot is not None:
            for run in full["runs"]:
                where = plot if single else _plot_name(plot, run)
                rd_plot.plot(run, where)
                wrote.append(f"wrote {os.path.abspath(where)}")
        if markdown is not None:
            testset.write_markdown(full, markdown, "genpost eval " + " ".join(sys.argv[2:]))
            wrote.append(f"wrote {os.path.abspath(markdown)}")
        if as_json:
            _print_json(result)
        else:
            for line in testset.text_lines(full):
                _out().print(line)
        sys.stdout.flush()
        for line in wrote:
            say(line)
        if full["failures"] and not full["runs"]:
            _fail(f"every clip failed; first: {full['failures'][0]['error']}", 6)


@app.command()
def pipe(
    plugin: list[str] = typer.Option(
        [], "--plugin", "-p", help="Post-processor to run (repeat). Default: as the sidecar's side info says."
    ),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Side info from this .gpsi sidecar (by frame index)."),
    option: list[str] = PLUGIN_OPTIONS,
    strength: Optional[float] = typer.Option(None, "--strength", help="Shorthand for --option strength=S."),
    max_errors: Optional[int] = typer.Option(None, "--max-errors", help="Fail after this many frame errors."),
    report: Optional[str] = typer.Option(None, "--report", help="Write the job report as JSON to this file."),
    device: str = DEVICE,
    on_plugin_error: PluginErrorPolicy = SKIP_ON_PLUGIN_ERROR,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr."),
):
    """Restore y4m from stdin to stdout, frame by frame: sits between two ffmpeg commands (docs/ffmpeg.md)."""
    with _errors():
        from ..jobs import pipe as pipe_mod

        _check(max_errors=max_errors, device=device)
        options = _options(option, {"strength": str(strength)} if strength is not None else None)
        if sys.stdin.isatty():
            _fail("genpost pipe reads y4m on stdin: ffmpeg -i IN -f yuv4mpegpipe - | genpost pipe ...", 2)
        if sys.stdout.isatty():
            _fail("genpost pipe writes y4m on stdout: pipe it into ffmpeg -f yuv4mpegpipe -i - ...", 2)
        result = pipe_mod.run(
            sys.stdin.buffer, sys.stdout.buffer, list(plugin) or None, sideinfo, options, max_errors, device,
            on_plugin_error,
        )  # fmt: skip
        if result.downstream_closed:  # nothing more can reach stdout; keep the interpreter's flush quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if report:
            with open(report, "w") as fh:
                json.dump(result.to_dict(), fh, indent=2, default=str)
        for warning in result.warnings:
            _warn(warning)
        if not quiet:
            fallbacks = sum(s.fallbacks for s in result.per_plugin.values())
            err.print(
                f"genpost pipe: {result.frames} frames, plugins: {', '.join(result.plugins) or 'none'}, "
                f"fallback frames: {fallbacks}"
            )


@app.command()
def batch(
    manifest: str = typer.Argument(..., help="Jobs as CSV, JSON or TOML: input, output, command (enhance|encode), options."),
    workers: int = typer.Option(1, "--workers", help="Jobs run at once, each on one Ray worker (> 1 needs Ray)."),
    ray_address: Optional[str] = RAY_ADDRESS,
    retries: int = typer.Option(1, "--retries", help="Runs again a job that failed for a reason that may pass."),
    report: Optional[str] = typer.Option(None, "--report", help="Per-job report (JSON; default MANIFEST.report.json)."),
    as_json: bool = JSON_REPORT,
    quiet: bool = NO_PROGRESS,
):
    """Run a catalogue of jobs over the workers; rerun to resume; one bad file never stops the others."""
    with _errors():
        from ..jobs import batch as batch_mod

        with _progress("batch", quiet) as progress:
            result = batch_mod.run(manifest, workers, ray_address, retries, report, progress)
        if as_json:
            _print_json(result)
        err.print(f"batch {manifest}: {batch_mod.summary_line(result)}")
        if result["summary"]["failed"]:
            raise typer.Exit(6)


plugin_app = typer.Typer(help="Write your own post-processor plugins.", no_args_is_help=True)
app.add_typer(plugin_app, name="plugin")


@plugin_app.command("new")
def plugin_new(
    name: str = typer.Argument(..., help="Plugin name: lowercase letters, digits and hyphens (e.g. my-filter)."),
    dir: str = typer.Option(".", "--dir", help="Folder in which to create the package folder genpost-NAME."),
):
    """Create a ready-to-install plugin package: entry point, identity post-processor, README, contract tests."""
    with _errors():
        from ..scaffold import new_plugin

        path = new_plugin(name, dir)
        err.print(
            f"created {path}: `python -m pip install -e {path}` makes '{name}' appear in `genpost plugins`; "
            f"`python -m pytest {path}` runs the contract kit"
        )


@app.command()
def bench(
    input: str = typer.Argument(..., help="Stream to decode, restore and re-encode."),
    plugin: str = typer.Option(..., "--plugin", "-p", help="Post-processor to time, or 'none'."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Time only the first N frames."),
    device: str = typer.Option("cpu", help="Device handed to the plugin's setup (cpu, cuda)."),
    fps: Optional[str] = RAW_FPS,
    preset: str = typer.Option("medium", help="x265 preset of the re-encode (both sides)."),
    crf: float = typer.Option(18.0, help="x265 CRF of the re-encode (both sides)."),
    repeat: int = typer.Option(2, help="Alternated runs of each side; the fastest counts."),
    workers: Optional[str] = typer.Option(
        None, "--workers", help="Scaling instead: enhance's fps at each worker count, e.g. 1,2 (docs/scaling.md)."
    ),
    chunk_frames: Optional[int] = typer.Option(None, "--chunk-frames", help="With --workers: frames per chunk."),
    option: list[str] = typer.Option(
        [], "--option", help="Plugin option KEY=VALUE; without any, the plugin's restoring mode (e.g. gan-enhance.strength=1)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
):
    """Speed of decode -> restore -> x265 per stage, against plain PyAV decode + the same x265 re-encode."""
    with _errors():
        from ..options import check_encoder

        check_encoder("libx265", None, crf, preset)
        _check(frames=frames, repeat=repeat, chunk_frames=chunk_frames, device=device)
        if workers is not None:  # scaling (genpost.eval.scaling)
            from ..eval.scaling import bench_workers, summary

            if option:
                _fail("--option: bench --workers runs the plugins' defaults (it takes no plugin options yet)", 2)

            result = bench_workers(input, plugin, workers, _fps(fps), preset, crf, chunk_frames, err.print)
            return _print_json(result) if as_json else err.print(summary(result))
        from ..eval.bench import bench as run_bench

        result = run_bench(input, plugin, frames=frames, device=device, fps=_fps(fps), preset=preset, crf=crf, repeat=repeat,
                           progress=err.print, options=_options(option))  # fmt: skip
        if as_json:
            _print_json(result)
            return
        out = _out()
        out.print(
            f"{result['frames']} frames: genpost {result['fps']:.1f} fps, baseline {result['baseline_fps']:.1f} fps "
            f"(overhead {result['overhead_ratio']:.2f}x), peak RSS {result['peak_rss_mb']:.0f} MiB"
        )
        used = " ".join(f"{k}={v}" for k, v in result["options"].items()) or "none"
        out.print(f"options: {used} (from {result['options_from']}), frames with side info: {result['frames_with_side_info']}")
        out.print("ms/frame: " + ", ".join(f"{k} {v:.2f}" for k, v in result["stages_ms"].items()))


@app.command()
def preview(
    input: str = typer.Argument(..., help="Stream to preview (as for enhance)."),
    output: str = typer.Option(..., "-o", "--output", help="PNG to write."),
    frame: int = typer.Option(0, "--frame", "-n", help="Frame index (presentation order, from 0)."),
    plugin: list[str] = typer.Option([], "--plugin", "-p", help="Post-processor (repeat). Default: as the side info says."),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Read side info from this .gpsi sidecar."),
    reference: Optional[str] = typer.Option(
        None, "--reference", help="Source clip: score base and restored against it (else restored vs base)."
    ),
    mode: PreviewMode = typer.Option(
        PreviewMode.SIDE,
        help="side (base | restored), split (one frame, base left, restored right), or diff (heat maps of "
        "|restored-base| and |restored-source|, amplified by --gain).",
    ),
    gain: int = typer.Option(8, "--gain", help="With --mode diff: multiply the 8-bit luma differences by this."),
    crop: Optional[str] = typer.Option(None, help="Show only W:H:X:Y (or WxH+X+Y) of the frame."),
    zoom: int = typer.Option(1, help="Enlarge the pictures N times (nearest neighbour)."),
    fps: Optional[str] = RAW_FPS,
    option: list[str] = PLUGIN_OPTIONS,
    no_vmaf: bool = typer.Option(False, "--no-vmaf", help="Skip VMAF-NEG (no ffmpeg binary needed)."),
    device: str = DEVICE,
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON on stdout."),
):
    """Base vs restored for one frame as a PNG, with PSNR-Y and VMAF-NEG in the caption."""
    with _errors():
        from ..eval.preview import preview as make_preview

        _check(frame=frame, zoom=zoom, gain=gain, device=device)
        options, rate = _options(option), _fps(fps)
        result = make_preview(
            input, output, frame, plugins=list(plugin) or None, sidecar=sideinfo, reference=reference, mode=mode,
            crop=crop, zoom=zoom, fps=rate, options=options, with_vmaf=not no_vmaf, device=device, gain=gain,
        )  # fmt: skip
        for warning in result["warnings"]:
            _warn(warning)
        if as_json:
            _print_json(result)
        else:
            err.print(f"wrote {output}: {result['size'][0]}x{result['size'][1]}, frame {frame}")


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    library = logging.getLogger("genpost")
    if not library.handlers:
        library.addHandler(WarningLine(logging.WARNING))
        library.propagate = False
    register_plugin_commands(app)
    try:
        app()
    except SystemExit as exc:
        if "ray" in sys.modules:  # --workers: Ray's core worker can crash at interpreter exit (ray#37288)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # the job, its actors and ray.shutdown() are finished: leave without the crash
        raise
