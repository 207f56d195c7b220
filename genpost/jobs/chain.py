"""Chain presets (filters/*.toml) and the ffmpeg route of ``genpost enhance``.

A chain is an ordered list of steps: FFmpeg filters before the first post-processor (pre), genpost
post-processors, FFmpeg filters after the last one (post), and an output profile (codec, bit depth,
preset, qp/crf). It runs as three cooperating processes, so each part does what it is best at::

    ffmpeg (decode + pre filters) --y4m--> genpost (restore, side info by frame index)
        --y4m--> ffmpeg (post filters, encoder: libvvenc for VVC, libx265, ...; mux with the input's
                 audio/subtitles; the genpost_postprocessors tag)

Frames carry no timestamps over y4m: the output is constant-rate at the input's rate. Side info is
keyed by frame index, so pre filters must keep the frame count and size for side-info plugins (a
plugin given frames of another size falls back to the base for them, and the report counts it).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tomllib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from .. import media
from ..errors import GenpostError, PipelineError, UsageError
from ..media import ffmpeg_tools
from ..media.y4m import Y4MError, Y4MReader, Y4MWriter
from ..options import VVENC_PRESETS, PluginErrorPolicy
from ..runner.loop import EnhanceReport, Progress, no_progress
from ..runner.session import DecodeSession
from .outputs import atomic_output, check_paths
from .pipe import output_header

FILTERS_DIR = Path(__file__).resolve().parents[2] / "filters"  # the shipped presets (source tree)
FILTERS_ENV = "GENPOST_FILTERS"  # more folders of presets, searched first (the Docker images set it)
CODECS = {"libx265": "libx265", "hevc": "libx265", "libx264": "libx264", "h264": "libx264",
          "vvc": "libvvenc", "libvvenc": "libvvenc", "ffv1": "ffv1", "y4m": "y4m"}  # fmt: skip
TEXT_SUBTITLES = ("subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text")  # MP4 holds these as mov_text
DEFAULT_VVC_QP = 24  # libvvenc has no CRF; QP 24 is about where x265 CRF 18 lands on restored content


class ChainError(GenpostError):
    """A chain preset or a --vf-pre/--vf-post/--codec combination that cannot work (bad usage)."""

    exit_code = 2


# ---------------------------------------------------------------- named FFmpeg filters


def _deinterlace(p: dict) -> str:
    mode = {"frame": "send_frame", "field": "send_field"}[p.get("mode", "frame")]
    return f"bwdif=mode={mode}:parity={p.get('parity', 'auto')}:deint={'all' if p.get('all', True) else 'interlaced'}"


def _scale(p: dict) -> str:
    return f"scale=w={p.get('width', -2)}:h={p.get('height', -2)}:flags={p.get('flags', 'lanczos')}"


def _format(p: dict) -> str:
    return "format=" + ("yuv420p10le" if p.get("bit_depth", 8) > 8 else "yuv420p")


# name -> (builder, {parameter: (type, allowed values or None)})
NAMED_FILTERS: dict[str, tuple[Any, dict[str, tuple[type, tuple | None]]]] = {
    "deinterlace": (_deinterlace, {"mode": (str, ("frame", "field")), "parity": (str, ("auto", "tff", "bff")),
                                   "all": (bool, None)}),
    "scale": (_scale, {"width": (int, None), "height": (int, None), "flags": (str, None)}),
    "format": (_format, {"bit_depth": (int, (8, 10))}),
}  # fmt: skip


# ---------------------------------------------------------------- the chain


@dataclass
class OutputProfile:
    """Encoder settings; ``None`` leaves the choice to a later layer (CLI flag, then the default)."""

    codec: str | None = None
    bit_depth: int | None = None
    preset: str | None = None
    qp: int | None = None
    crf: float | None = None
    keyint: int | None = None

    def overridden_by(self, other: OutputProfile) -> OutputProfile:
        """``other``'s values where it has them (a --qp drops this profile's crf, and --crf its qp)."""
        merged = dataclasses.replace(self, **{k: v for k, v in dataclasses.asdict(other).items() if v is not None})
        if other.qp is not None and other.crf is None:
            merged.crf = None
        if other.crf is not None and other.qp is None:
            merged.qp = None
        return merged


@dataclass
class Chain:
    source: str = "command line"
    description: str = ""
    pre: list[str] = field(default_factory=list)  # FFmpeg filter strings, in order
    plugins: list[str] | None = None  # None: as the side info says (``plugin = "auto"``)
    options: dict[str, str] = field(default_factory=dict)
    post: list[str] = field(default_factory=list)
    output: OutputProfile = field(default_factory=OutputProfile)

    @property
    def vf_pre(self) -> str | None:
        return ",".join(self.pre) or None

    @property
    def vf_post(self) -> str | None:
        return ",".join(self.post) or None


_TOP_KEYS = ("description", "step", "output")
_OUTPUT_KEYS = {"codec": str, "bit_depth": int, "preset": str, "qp": int, "crf": (int, float), "keyint": int}


def _keys(where: str, table: dict, known) -> None:
    for key in table:
        if key not in known:
            raise ChainError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")


def _typed(where: str, key: str, value, kind) -> None:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ChainError(f"{where}: {key} must be {names}, got {value!r}")


def named_filter(name: str, params: dict, where: str) -> str:
    """The FFmpeg filter string for a named filter step (deinterlace, scale, format)."""
    if name not in NAMED_FILTERS:
        raise ChainError(f"{where}: unknown filter {name!r} (known: {', '.join(NAMED_FILTERS)}; or use ffmpeg = \"...\")")
    build, spec = NAMED_FILTERS[name]
    _keys(where, params, spec)
    for key, value in params.items():
        kind, allowed = spec[key]
        _typed(where, key, value, kind)
        if allowed is not None and value not in allowed:
            raise ChainError(f"{where}: {key} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return build(params)


def parse(data: dict, source: str = "chain") -> Chain:
    """A Chain from a parsed TOML table; every unknown key or wrong type is a one-line ChainError."""
    _keys(source, data, _TOP_KEYS)
    chain = Chain(source=source)
    if "description" in data:
        _typed(source, "description", data["description"], str)
        chain.description = data["description"]
    steps = data.get("step", [])
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ChainError(f"{source}: 'step' must be an array of tables ([[step]])")
    plugins: list[str] = []
    auto = False
    for i, step in enumerate(steps, 1):
        where = f"{source}: step {i}"
        kinds = [k for k in ("filter", "ffmpeg", "plugin") if k in step]
        if len(kinds) != 1:
            raise ChainError(f"{where}: give exactly one of filter, ffmpeg, plugin")
        kind = kinds[0]
        if kind == "plugin":
            _keys(where, step, ("plugin", "options"))
            name = step["plugin"]
            _typed(where, "plugin", name, str)
            opts = step.get("options", {})
            if not isinstance(opts, dict):
                raise ChainError(f"{where}: options must be a table of KEY = value")
            for key, value in opts.items():
                _typed(where, f"options.{key}", value, (str, int, float, bool))
                chain.options[key] = str(value).lower() if isinstance(value, bool) else str(value)
            if chain.post:
                raise ChainError(f"{where}: FFmpeg filters between post-processors are not supported")
            if name == "auto":
                auto = True
            elif name != "none":
                plugins.append(name)
            continue
        if kind == "ffmpeg":
            _keys(where, step, ("ffmpeg",))
            _typed(where, "ffmpeg", step["ffmpeg"], str)
            vf = step["ffmpeg"].strip()
            if not vf:
                raise ChainError(f"{where}: empty ffmpeg filter")
        else:
            _typed(where, "filter", step["filter"], str)
            vf = named_filter(step["filter"], {k: v for k, v in step.items() if k != "filter"}, where)
        (chain.post if plugins or auto else chain.pre).append(vf)
    if auto and plugins:
        raise ChainError(f"{source}: plugin = \"auto\" cannot be combined with named plugins")
    if not (plugins or auto or any(s.get("plugin") == "none" for s in steps)):
        raise ChainError(f"{source}: no plugin step (add [[step]] plugin = \"auto\" to use what the side info names)")
    chain.plugins = None if auto else plugins
    out = data.get("output", {})
    if not isinstance(out, dict):
        raise ChainError(f"{source}: [output] must be a table")
    _keys(f"{source}: [output]", out, _OUTPUT_KEYS)
    for key, value in out.items():
        _typed(f"{source}: [output]", key, value, _OUTPUT_KEYS[key])
    chain.output = OutputProfile(**out)
    check_profile(chain.output, f"{source}: [output]")
    return chain


def preset_dirs() -> list[Path]:
    extra = [Path(d) for d in os.environ.get(FILTERS_ENV, "").split(os.pathsep) if d]
    return [d for d in extra + [FILTERS_DIR] if d.is_dir()]


def load(path: str | os.PathLike) -> Chain:
    """Read and validate a chain preset; a bare name (``broadcast-hd``) means a preset in
    ``$GENPOST_FILTERS`` or the shipped filters/ folder."""
    p = Path(path)
    if not p.exists() and not p.suffix and p.name == str(path):
        p = next((d / f"{p.name}.toml" for d in preset_dirs() if (d / f"{p.name}.toml").is_file()), p)
    try:
        with open(p, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ChainError(f"{path}: no such chain preset (shipped: {', '.join(shipped()) or 'none'})") from None
    except OSError as exc:
        raise ChainError(f"{path}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ChainError(f"{path}: not valid TOML ({exc})") from None
    return parse(data, str(path))


def shipped() -> list[str]:
    return sorted({p.stem for d in preset_dirs() for p in d.glob("*.toml")})


def check_profile(profile: OutputProfile, where: str) -> None:
    if profile.codec is not None and profile.codec not in CODECS:
        raise ChainError(f"{where}: unknown codec {profile.codec!r} (use one of {', '.join(CODECS)})")
    if profile.bit_depth not in (None, 8, 10):
        raise ChainError(f"{where}: bit_depth must be 8 or 10, got {profile.bit_depth}")
    if profile.qp is not None and profile.crf is not None:
        raise ChainError(f"{where}: give qp or crf, not both")
    encoder = CODECS.get(profile.codec or "")
    if encoder == "libvvenc":
        if profile.bit_depth == 8:
            raise ChainError(f"{where}: libvvenc encodes 10-bit only (VVC Main 10); drop bit_depth = 8")
        if profile.crf is not None:
            raise ChainError(f"{where}: libvvenc has no CRF; give qp")
        if profile.preset is not None and profile.preset not in VVENC_PRESETS:
            raise ChainError(f"{where}: libvvenc presets are {', '.join(VVENC_PRESETS)}, got {profile.preset!r}")


def expand_vf(vf: str | None) -> list[str]:
    """A --vf-pre/--vf-post value: FFmpeg filters, where the bare name ``deinterlace`` means bwdif
    (``scale`` and ``format`` are FFmpeg's own names)."""
    if not vf:
        return []
    parts = [part.strip() for part in vf.split(",")]
    if "deinterlace" not in parts:
        return [vf]  # passed to ffmpeg as written (commas inside options stay untouched)
    return [named_filter("deinterlace", {}, "--vf") if part == "deinterlace" else part for part in parts if part]


# ---------------------------------------------------------------- running it


def _decoder_argv(input: str, raw: bool, fps: Fraction | None, vf: str | None) -> list[str]:
    ffmpeg = ffmpeg_tools.ffmpeg_python()

    src = ffmpeg.input(input, **({"framerate": str(fps)} if raw and fps else {}))
    kwargs = {"format": "yuv4mpegpipe", "strict": "-1", "fps_mode": "passthrough"}  # one y4m frame per decoded frame
    if vf:
        kwargs["vf"] = vf
    return ffmpeg_tools.compile_args(ffmpeg.output(src["v:0"], "pipe:", **kwargs))


def _encoder_argv(input, output, fmt, profile: OutputProfile, info, others, vf, provenance) -> list[str]:
    ffmpeg = ffmpeg_tools.ffmpeg_python()

    streams = [ffmpeg.input("pipe:", format="yuv4mpegpipe")["v"]]
    if others:
        src = ffmpeg.input(input)
        streams += [src[str(o.index)] for o in others]
    kw: dict[str, Any] = {"format": fmt}
    # y4m carries no colour description but the range: label the frames first (encoders take colour from
    # frames; ffmpeg's -color_primaries is not applied to them), so later post filters can convert it
    color = info.color
    labels = [f"{k}={v}" for k, v in (("color_primaries", color.primaries), ("color_trc", color.transfer),
                                      ("colorspace", color.matrix)) if v not in (0, 2)]  # fmt: skip
    if color.range in (1, 2):
        labels.append(f"range={color.range}")
    vf = ",".join(([f"setparams={':'.join(labels)}"] if labels else []) + ([vf] if vf else []))
    if vf:
        kw["vf"] = vf
    if others:
        text_subs = all(o.codec in TEXT_SUBTITLES for o in others if o.kind == "subtitle")
        kw.update({"c:a": "copy", "c:s": "mov_text" if fmt in ("mp4", "mov") and text_subs else "copy"})
    encoder = CODECS[profile.codec]
    if encoder == "y4m":
        kw.update({"c:v": "rawvideo", "strict": "-1"})
    else:
        kw["c:v"] = encoder
    if encoder == "libx265" and fmt in ("mp4", "mov"):
        kw["tag:v"] = "hvc1"  # what Apple players accept (FFmpeg's default hev1 they refuse)
    # neither the preset nor the command line chose a quality: lossless, as enhance's PyAV route (never worse)
    lossless = profile.qp is None and profile.crf is None
    if encoder == "libx265":
        params = ["log-level=error", "info=0", "repeat-headers=1"] + media.x265_hdr_params(color)
        if profile.keyint:
            params.append(f"keyint={profile.keyint}")
        if lossless:
            params.append("lossless=1")
        kw.update({"preset": profile.preset or "medium", "x265-params": ":".join(params)})
    elif encoder == "libx264":
        kw["preset"] = profile.preset or "medium"
    elif encoder == "ffv1":
        kw.update({"level": "3", "slicecrc": "1"})
    elif encoder == "libvvenc":
        kw.update({"preset": profile.preset or "medium", "qp": str(profile.qp if profile.qp is not None else DEFAULT_VVC_QP)})
    if encoder in ("libx265", "libx264"):
        if profile.qp is not None:
            kw["qp"] = str(profile.qp)
        elif profile.crf is not None:
            kw["crf"] = str(profile.crf)
        elif encoder == "libx264":
            kw["qp"] = "0"  # x264's lossless mode
    if profile.keyint and encoder in ("libx264", "libvvenc", "ffv1"):
        kw["g"] = str(profile.keyint)
    if provenance and fmt in ("matroska", "mp4", "mov"):
        kw["metadata"] = f"genpost_postprocessors={provenance}"
        if fmt in ("mp4", "mov"):
            kw["movflags"] = "+use_metadata_tags"  # keep a non-standard tag in the udta box
    if info.language:
        kw["metadata:s:v:0"] = f"language={info.language}"
    return ffmpeg_tools.compile_args(ffmpeg.output(*streams, output, **kw))


def output_coding(encoder: str, profile: OutputProfile) -> str:
    """The report's words for the video coding: 'libx265 lossless', 'libx265 crf 16', 'libvvenc qp 24', ..."""
    if encoder in ("ffv1", "y4m"):
        return encoder
    if profile.qp is not None or encoder == "libvvenc":
        return f"{encoder} qp {profile.qp if profile.qp is not None else DEFAULT_VVC_QP}"
    return f"{encoder} crf {profile.crf:g}" if profile.crf is not None else f"{encoder} lossless"


def resolve_profile(chain: Chain, cli: OutputProfile, input_depth: int) -> OutputProfile:
    """Preset values, overridden by explicit CLI flags, then genpost's defaults (libx265, lossless)."""
    check_profile(cli, "command line")
    profile = chain.output.overridden_by(cli)
    if profile.codec is None:
        profile.codec = "libx265"
    check_profile(profile, f"{chain.source} with the command line")
    if profile.bit_depth is None:
        profile.bit_depth = 10 if CODECS[profile.codec] == "libvvenc" else input_depth
    return profile


def _check_container(fmt: str, encoder: str, output) -> None:
    ok = {"hevc": ("libx265",), "vvc": ("libvvenc",), "yuv4mpegpipe": ("y4m",)}
    if fmt in ok and encoder not in ok[fmt]:
        raise ChainError(f"{Path(output).suffix} output cannot hold {encoder} video")
    if encoder == "y4m" and fmt != "yuv4mpegpipe":
        raise ChainError("--codec y4m needs a .y4m output")


def enhance(
    input: str | os.PathLike,
    output: str | os.PathLike,
    chain: Chain,
    *,
    cli_profile: OutputProfile | None = None,
    plugins: list[str] | None = None,
    sidecar: str | os.PathLike | None = None,
    fps: Fraction | None = None,
    progress: Progress = no_progress,
    max_errors: int | None = None,
    on_plugin_error: PluginErrorPolicy = PluginErrorPolicy.SKIP,
) -> EnhanceReport:
    """``genpost enhance`` through ffmpeg: decode (+ pre filters) -> restore -> (post filters +) encode."""
    input, output = str(input), str(output)
    cli_profile = cli_profile or OutputProfile()
    check_paths([input, sidecar], output)
    if plugins is not None and chain.plugins:
        raise ChainError(f"{chain.source} names its post-processors; drop --plugin")
    fmt = media.output_format(output)
    with media.InputFile(input, fps, any_pix_fmt=True) as inp:
        if not inp.timed:
            raise UsageError(f"{input} is a raw stream without timing; give --fps")
        # the same decode session as plain enhance: NNPFC/NNPFA, chain records, the stream's options
        session = DecodeSession.open(inp, sidecar, chain.plugins if chain.plugins is not None else plugins, chain.options)
        index = session.index
        info, raw = inp.info, bool(inp.raw_format)
        others = [o for o in inp.others if o.kind in ("audio", "subtitle")]
    procs, report = session.chain, session.report(output)
    for label, vf in (("pre filters", chain.vf_pre), ("post filters", chain.vf_post)):
        if vf:
            ffmpeg_tools.check_filter(vf, f"{chain.source}: {label}")
    if others and fmt in ("yuv4mpegpipe", "hevc", "vvc"):
        report.warnings.append(f"{len(others)} audio/subtitle streams dropped: a {Path(output).suffix} file holds video only")
        others = []
    with atomic_output(output) as tmp:
        decoder = ffmpeg_tools.Process(_decoder_argv(input, raw, fps, chain.vf_pre), "decode", stdout=subprocess.PIPE)
        encoder = None
        try:
            try:
                reader = Y4MReader(decoder.stdout, f"{input} (decoded by ffmpeg)")
            except Y4MError as exc:
                if decoder.finish() == 0 or "chroma" in str(exc):  # ffmpeg decoded it; genpost cannot take it
                    raise Y4MError(f"{exc}; or add a format step / --vf-pre format=yuv420p10le") from None
                raise media.MediaError(f"{input}: ffmpeg cannot decode it ({decoder.error()})") from None
            profile = resolve_profile(chain, cli_profile, reader.header.bit_depth)
            encoder_name = CODECS[profile.codec]
            report.output_coding = output_coding(encoder_name, profile)
            _check_container(fmt, encoder_name, output)
            if encoder_name != "y4m":
                ffmpeg_tools.require_encoder(encoder_name)
            stream = reader.header.stream_info(info.codec, info.color)
            if (stream.width, stream.height) != (info.width, info.height) and index.formats():
                report.warnings.append(
                    f"pre filters changed the size to {stream.width}x{stream.height}: side info made for "
                    f"{info.width}x{info.height} will not apply"
                )
            header = output_header(reader.header, procs, profile.bit_depth)
            provenance = header.extension("GENPOST_POSTPROCESSORS")
            restorer = session.restorer(stream, report, None, max_errors, on_plugin_error)
            frames = restorer.frames(reader, profile.bit_depth, progress, info.frames)
            if encoder_name == "y4m" and not chain.vf_post:  # no ffmpeg needed: keeps the X provenance field
                with open(tmp, "wb") as fh:
                    writer = Y4MWriter(fh, header)
                    for frame in frames:
                        writer.write(frame)
            else:
                argv = _encoder_argv(input, tmp, fmt, profile, info, others, chain.vf_post, provenance)
                encoder = ffmpeg_tools.Process(argv, "encode", stdin=subprocess.PIPE)
                try:
                    writer = Y4MWriter(encoder.stdin, header)
                    for frame in frames:
                        writer.write(frame)
                    encoder.stdin.close()
                except BrokenPipeError:
                    pass  # the encoder died; its exit status and message say why
                if encoder.finish() != 0:
                    raise ffmpeg_tools.FFmpegError(f"ffmpeg encode to {output} failed: {encoder.error()}")
            if decoder.finish() != 0:
                raise media.MediaError(f"{input}: ffmpeg decode failed ({decoder.error()})")
            if report.frames == 0:
                raise PipelineError(f"{input}: ffmpeg decoded no frames")
        finally:
            decoder.close()
            if encoder is not None:
                encoder.close()
    report.side_info = session.side_info_report()
    return report
