"""The typer CLI. The only place where errors become one-line messages and exit codes.

Exit codes (``EXIT_CODES``, documented in docs/cli.md): 0 ok, 1 internal error, 2 bad usage, 3 unreadable/
unsupported input, 4 unusable output path, 5 plugin problem, 6 job failed, 130 interrupted. Every option
value is checked before any work starts, and user text (paths, values, pip extras) is printed verbatim:
no console markup is interpreted.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from contextlib import contextmanager
from fractions import Fraction
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

try:  # typer >= 0.2x carries its own copy of click
    from typer._click import exceptions as click_errors  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors  # type: ignore[no-redef]

EXIT_CODES = {  # the table in docs/cli.md (tests/test_cli_contract.py checks they agree)
    0: "success",
    1: "internal error (a bug; rerun with `GENPOST_DEBUG=1` for the traceback and report it)",
    2: "bad usage: unknown option or invalid value (`--option` keys and values included), a feature whose optional packages are missing, or an `encode --base` stream that does not match the source (size, frame count)",
    3: "input cannot be read or decoded, or is unsupported (codec, pixel format, extension, a frame over `GENPOST_MAX_PIXELS`), or has more damaged frames than `--max-errors`",
    4: "output path unusable: it is the input, a folder, or its folder is missing",
    5: "plugin problem: unknown name, not allowed by `GENPOST_LOAD_PLUGINS`, failed to load, or written for another plugin API",
    6: "the job failed: more failed restorations than `--max-errors`, a plugin raised with `--on-plugin-error fail`, or a `--resume` work folder belongs to another job",
    130: "interrupted by Ctrl-C or SIGTERM (the destination is left untouched)",
}


class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, a value of the wrong type) as one line on stderr, exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_errors.ClickException as exc:
            where = exc.ctx.command_path if isinstance(exc, click_errors.UsageError) and exc.ctx else "genpost"
            _line("genpost: error: ", "red", f"{exc.format_message()} (see {where} --help)")
            sys.exit(exc.exit_code)
        except click_errors.Abort:
            _line("genpost: error: ", "red", "aborted")
            sys.exit(130)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    help="Generative post-processing for standard HEVC/VVC streams with side information.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=_OneLineErrors,
)
# markup=False: paths, option values and pip extras such as genpost[ffmpeg] are printed as they are
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def _out() -> Console:
    return Console(soft_wrap=True, markup=False, highlight=False)


def _line(label: str, style: str, message: str) -> None:
    err.print(Text.assemble((label, style), message))


def _warn(message: str) -> None:
    _line("genpost: warning: ", "yellow", message)


def _fail(message: str, code: int) -> NoReturn:
    _line("genpost: error: ", "red", message)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from . import __api_version__, __version__

        sys.stdout.write(f"genpost {__version__} (plugin API {__api_version__})\n")
        raise typer.Exit(0)


@app.callback()
def _main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
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
        code = getattr(exc, "exit_code", None)
        if code is None:
            _fail(f"internal error: {type(exc).__name__}: {exc}", 1)
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, code)


def _fps(value: Optional[str]) -> Optional[Fraction]:
    if value is None:
        return None
    try:
        fps = Fraction(value)
    except (ValueError, ZeroDivisionError):
        _fail(f"--fps must be a number or a ratio like 30000/1001, got {value!r}", 2)
    if fps <= 0:
        _fail(f"--fps must be positive, got {value!r}", 2)
    return fps


def _options(pairs: list[str], extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """``--option`` pairs (and ``extra``), each checked against the plugins' declared options (exit 2)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--option wants PLUGIN.KEY=VALUE, got {pair!r}", 2)
        out[key] = value
    out.update(extra or {})
    _check_options(out)
    return out


def _check_options(options: dict[str, str]) -> None:
    if not options:
        return
    from .options import validate
    from .plugins import postprocessors

    validate(options, {name: reg.cls for name, reg in postprocessors().items()})


def _check(**values) -> None:
    """Core values before any work: raises OptionError (exit 2) naming the flag and what it allows."""
    from . import options as o

    if values.get("carriage") is not None:
        o.check_choice("--carriage", values["carriage"], o.CARRIAGES)
    if values.get("on_plugin_error") is not None:
        o.check_choice("--on-plugin-error", values["on_plugin_error"], o.ON_PLUGIN_ERROR)
    for flag, lo in (("max_errors", 0), ("chunk_frames", 1), ("workers", 1), ("frames", 1), ("keyint", 1),
                     ("repeat", 1), ("zoom", 1), ("gain", 1), ("frame", 0)):  # fmt: skip
        if values.get(flag) is not None and values[flag] < lo:
            raise o.OptionError(f"--{flag.replace('_', '-')} {values[flag]}: must be at least {lo}")
    if values.get("device") is not None:
        _check_device(values["device"])


def _check_device(device: str) -> None:
    """cpu, or cuda[:N] where a CUDA device is visible to torch or onnxruntime (exit 2 otherwise)."""
    from .options import OptionError

    kind, _, number = device.partition(":")
    if kind not in ("cpu", "cuda") or (number and not (kind == "cuda" and number.isdigit())):
        raise OptionError(f"--device {device}: use cpu or cuda (or cuda:N)")
    if kind == "cuda" and not _cuda_available():
        raise OptionError(f"--device {device}: no CUDA device is visible (torch and onnxruntime see none); use --device cpu")


def _cuda_available() -> bool:
    """torch's answer where torch is installed; else an NVIDIA device node and an onnxruntime with CUDA
    (onnxruntime lists its CUDA provider whether or not a device is there)."""
    from .modeling import runtime_installed

    if runtime_installed("torch"):
        import torch

        return bool(torch.cuda.is_available())
    if runtime_installed("onnx") and os.path.exists("/dev/nvidia0") and os.environ.get("CUDA_VISIBLE_DEVICES") != "":
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    return False


@contextmanager
def _progress(label: str, quiet: bool):
    if quiet or not err.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _settings(codec, bit_depth, qp, crf, preset, keyint):
    from .media import EncoderSettings
    from .options import check_encoder

    if qp is not None and crf is not None:
        _fail("give --qp or --crf, not both", 2)
    if bit_depth not in (None, 8, 10):
        _fail(f"--bit-depth must be 8 or 10, got {bit_depth}", 2)
    check_encoder(codec, qp, crf, preset)
    return EncoderSettings(codec=codec, bit_depth=bit_depth or 0, qp=qp, crf=crf, preset=preset, keyint=keyint)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


WORKERS = typer.Option(1, "--workers", help="Ray workers for keyframe-aligned chunks (> 1 needs Ray; docs/scaling.md).")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="With --workers: a Ray cluster (e.g. auto) instead of a local one.")


@app.command()
def encode(
    source: str = typer.Argument(..., help="Original video (y4m or anything PyAV reads)."),
    output: str = typer.Option(..., "-o", "--output", help="HEVC output: .mkv, .mp4, .ts or raw .265."),
    plugin: list[str] = typer.Option([], "--plugin", "-p", help="Post-processor whose side info to send (repeat)."),
    qp: Optional[int] = typer.Option(None, help="Constant QP for the x265 base."),
    crf: Optional[float] = typer.Option(None, help="CRF for the x265 base (default 28 when no --qp)."),
    preset: str = typer.Option("medium", help="x265 preset."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="Base bit depth: 8 or 10 (default: the source's)."),
    keyint: Optional[int] = typer.Option(None, help="Maximum GOP length in frames."),
    carriage: str = typer.Option("sei", help="Side-info carriage: sei, nnpfc (H.274 NNPFC/NNPFA declaring the chain, records in SEI), track or sidecar."),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Also write a .gpsi sidecar here."),
    fps: Optional[str] = typer.Option(None, help="Frame rate for sources without timing."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE (e.g. wiener.lambda_scale=4)."),
    max_errors: int = typer.Option(
        0, "--max-errors", help="Damaged source frames (concealed) plus plugin failures allowed (default 0: strict)."
    ),
    on_plugin_error: str = typer.Option(
        "fail", "--on-plugin-error", help="A plugin that raises: fail the job, or skip (no side info for that frame)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Work in GOP-aligned chunks beside the output; rerun with --resume to continue."
    ),
    chunk_frames: Optional[int] = typer.Option(
        None, "--chunk-frames", help="With --resume or --workers: frames per chunk before the next keyframe (default 240)."
    ),
    workers: int = WORKERS,
    ray_address: Optional[str] = RAY_ADDRESS,
    base: Optional[str] = typer.Option(
        None, "--base", help="Add side info to this existing HEVC/VVC stream (raw .265/.266 or a container) "
        "instead of encoding one; its packets are kept as they are. --qp tells the plugins its QP."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Make the x265 base (or take --base) and carry each plugin's side info with it."""
    with _errors():
        from . import pipeline
        from .options import check_range

        _check(carriage=carriage, on_plugin_error=on_plugin_error, max_errors=max_errors, chunk_frames=chunk_frames,
               workers=workers, keyint=keyint)  # fmt: skip
        rate, options = _fps(fps), _options(option)
        if base is not None:
            from .addon import encode_with_base

            check_range("--qp", qp, 0, 63, " (the QP --base was coded with)")
            with _progress("encode", quiet) as progress:
                report = encode_with_base(source, base, output, plugin, carriage, sideinfo, qp, rate, options, progress)
        else:
            settings = _settings("libx265", bit_depth, qp, crf if crf is not None or qp is not None else 28, preset, keyint)
            with _progress("encode", quiet) as progress:
                report = pipeline.encode(
                    source, output, settings, plugin, carriage, sideinfo, rate, progress, options,
                    max_errors=max_errors, on_plugin_error=on_plugin_error, resume=resume, chunk_frames=chunk_frames,
                    workers=workers, ray_address=ray_address,
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
    fps: Optional[str] = typer.Option(None, help="Frame rate for raw .265/.266 inputs."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE (e.g. strength=0.5)."),
    max_errors: Optional[int] = typer.Option(
        None, "--max-errors", help="Fail after this many damaged input frames plus plugin failures (default: no limit)."
    ),
    on_plugin_error: str = typer.Option(
        "skip", "--on-plugin-error", help="A plugin that raises: skip it for that frame (counted), or fail the job."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Work in GOP-aligned chunks beside the output; rerun with --resume to continue."
    ),
    chunk_frames: Optional[int] = typer.Option(
        None, "--chunk-frames", help="With --resume or --workers: frames per chunk before the next keyframe (default 240)."
    ),
    workers: int = WORKERS,
    ray_address: Optional[str] = RAY_ADDRESS,
    chain: Optional[str] = typer.Option(
        None, "--chain", help="Chain preset (TOML, e.g. filters/broadcast-hd.toml): FFmpeg filters, plugins, output."
    ),
    vf_pre: Optional[str] = typer.Option(None, "--vf-pre", help="FFmpeg filters before restoring (e.g. deinterlace)."),
    vf_post: Optional[str] = typer.Option(None, "--vf-post", help="FFmpeg filters after restoring (e.g. scale=1280:-2)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Decode, restore every frame with post-processors, and re-mux with the original streams."""
    with _errors():
        from . import pipeline
        from .options import check_encoder

        _check(on_plugin_error=on_plugin_error, max_errors=max_errors, chunk_frames=chunk_frames, workers=workers)
        if output.lower().endswith(".y4m"):
            codec = "y4m"
        codec = codec and codec.lower()
        plugins = list(plugin) or None
        rate = _fps(fps)
        if chain or vf_pre or vf_post or codec in ("vvc", "libvvenc"):
            # the ffmpeg route (docs/ffmpeg.md): ffmpeg decode + filters -> restore -> ffmpeg encode
            from . import chain as chain_mod
            from . import ffmpeg_tools

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
                    input, output, steps, cli_profile, plugins, sideinfo, rate, progress, max_errors,
                    on_plugin_error,
                )  # fmt: skip
        else:
            settings = _settings(codec, bit_depth, qp, crf, preset or "medium", None)
            options = _options(option)
            with _progress("enhance", quiet) as progress:
                report = pipeline.enhance(
                    input, output, settings, plugins, sideinfo, rate, options, progress, max_errors,
                    on_plugin_error=on_plugin_error, resume=resume, chunk_frames=chunk_frames,
                    workers=workers, ray_address=ray_address,
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
                f"fallback frames: {fallbacks}, malformed records: {malformed}"
            )


@app.command()
def inspect(
    input: str = typer.Argument(..., help="Stream to describe."),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Also read this .gpsi sidecar."),
    fps: Optional[str] = typer.Option(None, help="Frame rate for raw .265/.266 inputs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
):
    """Streams, codec, frames, and the side-info records per plugin with their bytes and kbps."""
    with _errors():
        from . import pipeline

        info = pipeline.inspect(input, _fps(fps), sideinfo)
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
        from .plugins import postprocessors

        rows: list[dict] = [
            {
                "name": name,
                "version": reg.cls.version,
                "side_info": reg.cls.side_info,
                "plugin": reg.plugin,
                "source": reg.source,
                "description": reg.cls.description,
                "options": None if reg.cls.options is None else [o.to_dict() for o in reg.cls.options],
            }
            for name, reg in sorted(postprocessors().items())
        ]
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
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE for analyze and restore."),
    plot: Optional[str] = typer.Option(
        None, "--plot", help="RD curves as PNG (needs matplotlib); with several runs, one PNG per run named PLOT-clip-plugin.png."
    ),
    markdown: Optional[str] = typer.Option(None, "--markdown", help="Write the BD-rate tables as Markdown to this file."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
):
    """Rate-distortion of an anchor ladder vs genpost (every side-info bit counted) and the BD-rates, for one
    clip and plugin or a whole test set."""
    with _errors():
        from . import evalplot, evalset
        from .evaluate import DEFAULT_QPS, evaluate
        from .pipeline import check_paths

        if stream and qp is not None:
            _fail("give --qp (x265 ladder) or --stream files, not both", 2)
        if bit_depth not in (None, 8, 10):
            _fail(f"--bit-depth must be 8 or 10, got {bit_depth}", 2)
        try:
            qps = [int(q) for q in qp.split(",")] if qp is not None else list(DEFAULT_QPS)
        except ValueError:
            _fail(f"--qp wants comma-separated integers, got {qp!r}", 2)
        from .options import check_encoder

        for q in qps:
            check_encoder("libx265", q, None, preset)
        check_encoder("libx265", None, None, preset)
        _check(frames=frames)
        options = _options(option)
        rate = _fps(fps)
        clips = evalset.collect_sources(sources)
        single = len(clips) == 1 and len(plugin) == 1 and not os.path.isdir(sources[0])
        if stream and not single:
            _fail("--stream anchors belong to one clip and one plugin", 2)
        for path in (plot, markdown):
            if path is not None:
                check_paths([*clips, *stream], path)
        say = err.print
        anchors: list[str | os.PathLike] = list(stream)
        if single:
            result = evaluate(
                clips[0], plugin[0], qps, preset, bit_depth, options, say, streams=anchors or None,
                fps=rate, frames=frames,
            )  # fmt: skip
            full: dict = {"runs": [result], "summary": evalset.summarize([result], plugin), "failures": []}
            full["unavailable"] = result["unavailable"]
        else:
            full = evalset.evaluate_set(clips, plugin, qps, preset, bit_depth, options, say, rate, frames)
            result = full
        wrote = []  # said last, after the results, so the paths are not lost among the progress lines
        if plot is not None:
            for run in full["runs"]:
                target = plot if single else _plot_name(plot, run)
                evalplot.plot(run, target)
                wrote.append(f"wrote {os.path.abspath(target)}")
        if markdown is not None:
            evalset.write_markdown(full, markdown, "genpost eval " + " ".join(sys.argv[2:]))
            wrote.append(f"wrote {os.path.abspath(markdown)}")
        if as_json:
            _print_json(result)
        else:
            out = _out()
            for line in evalset.text_lines(full):
                out.print(line)
        sys.stdout.flush()
        for line in wrote:
            say(line)
        if full["failures"] and not full["runs"]:
            _fail(f"every clip failed; first: {full['failures'][0]['error']}", 6)


def _plot_name(plot: str, run: dict) -> str:
    base, ext = os.path.splitext(plot)
    return f"{base}-{os.path.splitext(os.path.basename(run['source']))[0]}-{run['plugin']}{ext or '.png'}"


@app.command()
def pipe(
    plugin: list[str] = typer.Option(
        [], "--plugin", "-p", help="Post-processor to run (repeat). Default: as the sidecar's side info says."
    ),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Side info from this .gpsi sidecar (by frame index)."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE (e.g. strength=0.5)."),
    strength: Optional[float] = typer.Option(None, "--strength", help="Shorthand for --option strength=S."),
    max_errors: Optional[int] = typer.Option(None, "--max-errors", help="Fail after this many frame errors."),
    report: Optional[str] = typer.Option(None, "--report", help="Write the job report as JSON to this file."),
    device: str = typer.Option("cpu", help="Device handed to the plugins' setup (cpu, cuda)."),
    on_plugin_error: str = typer.Option(
        "skip", "--on-plugin-error", help="A plugin that raises: skip it for that frame (counted), or fail."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line on stderr."),
):
    """Restore y4m from stdin to stdout, frame by frame: sits between two ffmpeg commands (docs/ffmpeg.md)."""
    with _errors():
        from . import pipe as pipe_mod

        _check(on_plugin_error=on_plugin_error, max_errors=max_errors, device=device)
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
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Run a catalogue of jobs over the workers; rerun to resume; one bad file never stops the others."""
    with _errors():
        from . import batch as batch_mod

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
        from .scaffold import new_plugin

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
    fps: Optional[str] = typer.Option(None, help="Frame rate for raw .265/.266 inputs."),
    preset: str = typer.Option("medium", help="x265 preset of the re-encode (both sides)."),
    crf: float = typer.Option(18.0, help="x265 CRF of the re-encode (both sides)."),
    repeat: int = typer.Option(2, help="Alternated runs of each side; the fastest counts."),
    workers: Optional[str] = typer.Option(
        None, "--workers", help="Scaling instead: enhance's fps at each worker count, e.g. 1,2 (docs/scaling.md)."
    ),
    chunk_frames: Optional[int] = typer.Option(None, "--chunk-frames", help="With --workers: frames per chunk."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
):
    """Speed of decode -> restore -> x265 per stage, against plain PyAV decode + the same x265 re-encode."""
    with _errors():
        from .options import check_encoder

        check_encoder("libx265", None, crf, preset)
        _check(frames=frames, repeat=repeat, chunk_frames=chunk_frames, device=device)
        if workers is not None:  # scaling (genpost.scaling)
            from .scaling import bench_workers, summary

            result = bench_workers(input, plugin, workers, _fps(fps), preset, crf, chunk_frames, err.print)
            return _print_json(result) if as_json else err.print(summary(result))
        from .bench import bench as run_bench

        result = run_bench(input, plugin, frames, device, _fps(fps), preset, crf, repeat, err.print)
        if as_json:
            _print_json(result)
            return
        out = _out()
        out.print(
            f"{result['frames']} frames: genpost {result['fps']:.1f} fps, baseline {result['baseline_fps']:.1f} fps "
            f"(overhead {result['overhead_ratio']:.2f}x), peak RSS {result['peak_rss_mb']:.0f} MiB"
        )
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
    mode: str = typer.Option(
        "side",
        help="side (base | restored), split (one frame, base left, restored right), or diff (heat maps of "
        "|restored-base| and |restored-source|, amplified by --gain).",
    ),
    gain: int = typer.Option(8, "--gain", help="With --mode diff: multiply the 8-bit luma differences by this."),
    crop: Optional[str] = typer.Option(None, help="Show only W:H:X:Y (or WxH+X+Y) of the frame."),
    zoom: int = typer.Option(1, help="Enlarge the pictures N times (nearest neighbour)."),
    fps: Optional[str] = typer.Option(None, help="Frame rate for raw .265/.266 inputs."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE."),
    no_vmaf: bool = typer.Option(False, "--no-vmaf", help="Skip VMAF-NEG (no ffmpeg binary needed)."),
    device: str = typer.Option("cpu", help="Device handed to the plugins' setup (cpu, cuda)."),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON on stdout."),
):
    """Base vs restored for one frame as a PNG, with PSNR-Y and VMAF-NEG in the caption."""
    with _errors():
        from .options import check_choice
        from .preview import preview as make_preview

        check_choice("--mode", mode, ("side", "split", "diff"))
        _check(frame=frame, zoom=zoom, gain=gain, device=device)
        options, rate = _options(option), _fps(fps)
        result = make_preview(
            input, output, frame, list(plugin) or None, sideinfo, reference, mode, crop, zoom, rate,
            options, not no_vmaf, device, gain,
        )  # fmt: skip
        for warning in result["warnings"]:
            _warn(warning)
        if as_json:
            _print_json(result)
        else:
            err.print(f"wrote {output}: {result['size'][0]}x{result['size'][1]}, frame {frame}")


def _register_plugin_commands() -> None:
    """Let plugins add commands (register_commands hook); a broken plugin must not break --help."""
    if os.environ.get("GENPOST_NO_PLUGIN_COMMANDS"):
        return
    try:
        from .plugins import make_plugin_manager

        make_plugin_manager().hook.register_commands(cli=app)
    except Exception as exc:
        _warn(f"plugin commands not loaded: {exc}")


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (kill, timeout, docker stop) cleans up like Ctrl-C: exit 130


class _WarningLine(logging.Handler):
    """genpost's library warnings (logger "genpost") as the CLI's one-line warnings."""

    def emit(self, record: logging.LogRecord) -> None:
        _warn(record.getMessage())


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    library = logging.getLogger("genpost")
    if not library.handlers:
        library.addHandler(_WarningLine(logging.WARNING))
        library.propagate = False
    _register_plugin_commands()
    try:
        app()
    except SystemExit as exc:
        if "ray" in sys.modules:  # --workers: Ray's core worker can crash at interpreter exit (ray#37288)
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # the job, its actors and ray.shutdown() are finished: leave without the crash
        raise


if __name__ == "__main__":
    main()
