"""The typer CLI. The only place where errors become one-line messages and exit codes.

Exit codes: 0 ok, 1 internal error, 2 bad usage, 3 unreadable/unsupported input, 4 unusable output path,
5 plugin problem, 6 job failed, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from fractions import Fraction
from typing import Optional

import typer
from rich.console import Console

EXIT_CODES = {
    0: "success",
    1: "internal error (a bug: please report it with GENPOST_DEBUG=1 output)",
    2: "bad usage: unknown option or invalid value",
    3: "input cannot be read, decoded or is unsupported",
    4: "output path unusable: it is the input, a folder, or its folder is missing",
    5: "plugin problem: unknown name, not allowed, or failed to load",
    6: "the job failed (e.g. more frame errors than --max-errors)",
    130: "interrupted (the destination is left untouched)",
}

app = typer.Typer(
    help="Generative post-processing for standard HEVC/VVC streams with side information.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int) -> None:
    err.print(f"[red]genpost: error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _errors():
    """Turn every failure into one line on stderr and a documented exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary
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


def _options(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--option wants KEY=VALUE, got {pair!r}", 2)
        out[key] = value
    return out


@contextmanager
def _progress(label: str, quiet: bool):
    if quiet or not err.is_terminal:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True
    ) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _settings(codec, bit_depth, qp, crf, preset, keyint):
    from .media import EncoderSettings

    if qp is not None and crf is not None:
        _fail("give --qp or --crf, not both", 2)
    if bit_depth not in (None, 8, 10):
        _fail(f"--bit-depth must be 8 or 10, got {bit_depth}", 2)
    return EncoderSettings(codec=codec, bit_depth=bit_depth or 0, qp=qp, crf=crf, preset=preset, keyint=keyint)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


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
    carriage: str = typer.Option("sei", help="Side-info carriage: sei, track or sidecar."),
    sideinfo: Optional[str] = typer.Option(None, "--sideinfo", help="Also write a .gpsi sidecar here."),
    fps: Optional[str] = typer.Option(None, help="Frame rate for sources without timing."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE (e.g. wiener.lambda_scale=4)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Make the x265 base and carry each plugin's side info with it."""
    with _errors():
        from . import pipeline

        settings = _settings("libx265", bit_depth, qp, crf if crf is not None or qp is not None else 28, preset, keyint)
        with _progress("encode", quiet) as progress:
            report = pipeline.encode(
                source, output, settings, plugin, carriage, sideinfo, _fps(fps), progress, _options(option)
            )
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
        None, help="Output codec: libx265, libx264, ffv1, y4m or copy (default: libx265, or copy with no plugin)."
    ),
    qp: Optional[int] = typer.Option(None, help="Constant QP for the output encoder."),
    crf: Optional[float] = typer.Option(None, help="CRF for the output encoder (default 18)."),
    preset: str = typer.Option("medium", help="Encoder preset."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="Output bit depth (default: the input's)."),
    fps: Optional[str] = typer.Option(None, help="Frame rate for raw .265/.266 inputs."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE (e.g. strength=0.5)."),
    max_errors: Optional[int] = typer.Option(None, "--max-errors", help="Fail after this many frame errors."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Decode, restore every frame with post-processors, and re-mux with the original streams."""
    with _errors():
        from . import pipeline

        if output.lower().endswith(".y4m"):
            codec = "y4m"
        settings = _settings(codec, bit_depth, qp, crf, preset, None)
        plugins = list(plugin) or None
        with _progress("enhance", quiet) as progress:
            report = pipeline.enhance(
                input, output, settings, plugins, sideinfo, _fps(fps), _options(option), progress, max_errors
            )
        for warning in report.warnings:
            err.print(f"[yellow]genpost: warning:[/yellow] {warning}", highlight=False)
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
        out = Console(soft_wrap=True)
        out.print(f"{info['file']}: {info['size_bytes']} bytes", highlight=False)
        out.print(
            f"  video: {v['codec']} {v['width']}x{v['height']} {v['pix_fmt']} {v['frames']} frames "
            f"@ {v['rate'] or '?'} fps",
            highlight=False,
        )
        for s in info["streams"]:
            out.print(f"  {s['kind']}: {s['codec']} (stream {s['index']}, language {s['language'] or '-'})")
        si = info["side_info"]
        for fmt, entry in si.get("formats", {}).items():
            out.print(
                f"  side info {fmt}: {entry['records']} records, {entry['bytes']} bytes, {entry['kbps']} kbps",
                highlight=False,
            )
        if not si.get("formats"):
            out.print("  side info: none")
        for key in ("malformed", "duplicates", "over_cap"):
            if si.get(key):
                out.print(f"  {key} records: {si[key]}")


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")):
    """Installed post-processors, their versions, side-info formats and where they come from."""
    with _errors():
        from .plugins import postprocessors

        rows = [
            {
                "name": name,
                "version": reg.cls.version,
                "side_info": reg.cls.side_info,
                "plugin": reg.plugin,
                "source": reg.source,
                "description": reg.cls.description,
            }
            for name, reg in sorted(postprocessors().items())
        ]
        if as_json:
            _print_json(rows)
            return
        out = Console(soft_wrap=True)
        for row in rows:
            out.print(
                f"{row['name']} {row['version']}  side info: {row['side_info'] or '-'}  from {row['source']}"
                f"  {row['description']}",
                highlight=False,
            )


@app.command("eval")
def eval_(
    source: str = typer.Argument(..., help="Original clip (y4m or anything PyAV reads)."),
    plugin: str = typer.Option(..., "--plugin", "-p", help="Post-processor to evaluate."),
    qp: str = typer.Option("27,32,37,42", help="Comma-separated QPs."),
    preset: str = typer.Option("medium", help="x265 preset for anchor and base."),
    bit_depth: Optional[int] = typer.Option(None, "--bit-depth", help="8 or 10 (default: the source's)."),
    option: list[str] = typer.Option([], "--option", help="Plugin option KEY=VALUE for analyze."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
):
    """Rate-distortion of plain x265 vs genpost (side-info bits counted) and the BD-rate."""
    with _errors():
        from .evaluate import evaluate

        try:
            qps = [int(q) for q in qp.split(",")]
        except ValueError:
            _fail(f"--qp wants comma-separated integers, got {qp!r}", 2)
        result = evaluate(source, plugin, qps, preset, bit_depth, _options(option), lambda m: err.print(m))
        if as_json:
            _print_json(result)
            return
        out = Console(soft_wrap=True)
        for a, g in zip(result["anchor"], result["genpost"]):
            out.print(
                f"QP {a['qp']}: x265 {a['kbps']:.2f} kbps {a['psnr_y']:.3f} dB | genpost {g['kbps']:.2f} kbps "
                f"(side info {g['side_info_kbps']:.2f}) {g['psnr_y']:.3f} dB",
                highlight=False,
            )
        out.print("BD-rate: " + ", ".join(f"{k} {v:+.2f}%" for k, v in result["bd_rate"].items()), highlight=False)


def _register_plugin_commands() -> None:
    """Let plugins add commands (register_commands hook); a broken plugin must not break --help."""
    if os.environ.get("GENPOST_NO_PLUGIN_COMMANDS"):
        return
    try:
        from .plugins import make_plugin_manager

        make_plugin_manager().hook.register_commands(cli=app)
    except Exception as exc:  # noqa: BLE001
        err.print(f"[yellow]genpost: warning:[/yellow] plugin commands not loaded: {exc}", highlight=False)


def main() -> None:
    _register_plugin_commands()
    app()


if __name__ == "__main__":
    main()
