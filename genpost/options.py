"""Declared options: what ``--option PLUGIN.KEY=VALUE`` a post-processor takes, checked before any work.

A post-processor lists its options in ``PostProcessor.options`` (a tuple of :class:`Option`); the CLI then
refuses an unknown plugin or key, a value of the wrong type, out of range or not among the choices, with
one line naming the option and what it allows (exit code 2), before it reads or writes anything. At run
time ``Context.value`` parses an option by its declaration, so the check and the use cannot drift.
A post-processor that leaves ``options`` as None declares nothing: its keys are passed through unchecked.

The same module checks the core values of the CLI (``--qp``, ``--preset``, ``--codec``) and declares its
fixed choices (``--carriage``, ``--on-plugin-error``, ``--target``, ``preview --mode``) as ``Choice`` enums.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self, Union

from .errors import UsageError

Value = Union[float, int, str]


VVENC_PRESETS = ("faster", "fast", "medium", "slow", "slower")  # libvvenc's (--codec vvc)

class OptionError(UsageError):
    """An option or value the command cannot take (bad usage); the message is one line."""

    exit_code = 2


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


@dataclass(frozen=True)
class Option:
    """One option of a post-processor: ``kind`` is ``float``, ``int`` or ``str``; numbers may have a range
    ``lo..hi``, strings a tuple of ``choices``; ``default`` is the value as text (as on the command line)."""

    name: str
    kind: str = "str"
    default: str = ""
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("float", "int", "str"):
            raise ValueError(f"option {self.name}: kind must be float, int or str, not {self.kind!r}")

    def allowed(self) -> str:
        """What the option takes, in words: 'a number in 0..2', 'an integer in 1..4', 'one of onnx, torch'."""
        if self.choices is not None:
            return "one of " + ", ".join(self.choices)
        if self.kind == "str":
            return "any text"
        what = "an integer" if self.kind == "int" else "a number"
        if self.lo is not None and self.hi is not None:
            return f"{what} in {_fmt(self.lo)}..{_fmt(self.hi)}"
        if self.lo is not None:
            return f"{what} >= {_fmt(self.lo)}"
        if self.hi is not None:
            return f"{what} <= {_fmt(self.hi)}"
        return what

    def parse(self, raw: str, plugin: str = "") -> Value:
        """``raw`` as this option's type, or an OptionError naming ``plugin.name`` and the allowed values."""
        who = f"{plugin}.{self.name}" if plugin else self.name
        bad = OptionError(f"{who} must be {self.allowed()}, not {raw!r}")
        if self.kind == "str":
            if self.choices is not None and raw not in self.choices:
                raise bad
            return raw
        try:
            number = float(raw)
        except ValueError:
            raise bad from None
        if not math.isfinite(number) or (self.kind == "int" and number != int(number)):
            raise bad
        if (self.lo is not None and number < self.lo) or (self.hi is not None and number > self.hi):
            raise bad
        return int(number) if self.kind == "int" else number

    def to_dict(self) -> dict:
        out: dict = {"name": self.name, "type": self.kind, "default": self.default, "allowed": self.allowed()}
        if self.lo is not None:
            out["min"] = self.lo
        if self.hi is not None:
            out["max"] = self.hi
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.help:
            out["help"] = self.help
        return out


def number(name: str, default: str, lo: float | None = None, hi: float | None = None, help: str = "") -> Option:
    return Option(name, "float", default, lo, hi, None, help)


def integer(name: str, default: str, lo: float | None = None, hi: float | None = None, help: str = "") -> Option:
    return Option(name, "int", default, lo, hi, None, help)


def choice(name: str, default: str, choices: Iterable[str], help: str = "") -> Option:
    return Option(name, "str", default, None, None, tuple(choices), help)


def defaults(declared: Iterable[Option]) -> dict[str, str]:
    """``{name: default}`` of a declaration (what ``ctx.option`` falls back to)."""
    return {o.name: o.default for o in declared}


def by_name(declared: Iterable[Option]) -> dict[str, Option]:
    return {o.name: o for o in declared}


def validate(options: Mapping[str, str], classes: Mapping[str, Any]) -> None:
    """Check every ``PLUGIN.KEY=VALUE`` (and bare ``KEY=VALUE``, which every plugin reading KEY sees)
    against the installed post-processors ``classes`` (name -> class); raise OptionError on the first bad one.

    Unknown plugin names and undeclared keys of a plugin that declares its options are refused; keys of a
    plugin that declares nothing (``options`` None) pass unchecked. A bare key must be declared by some
    plugin (unless one declares nothing) and its value valid for each plugin declaring it."""
    undeclared = any(cls.options is None for cls in classes.values())
    for key, raw in options.items():
        try:
            _validate_one(key, raw, classes, undeclared)
        except OptionError as exc:
            raise OptionError(f"--option {key}={raw}: {exc}") from None


def _validate_one(key: str, raw: str, classes: Mapping[str, Any], undeclared: bool) -> None:
    plugin, dot, name = key.rpartition(".")
    if not dot and key in by_name(JOB_OPTIONS):
        by_name(JOB_OPTIONS)[key].parse(raw, "genpost")
        return
    if dot:
        if plugin not in classes:
            known = ", ".join(sorted(classes)) or "none installed"
            raise OptionError(f"no plugin {plugin!r} (installed: {known})")
        declared = classes[plugin].options
        if declared is None:
            return
        found = by_name(declared)
        if name not in found:
            raise OptionError(f"{plugin} has no option {name!r} (it takes: {', '.join(sorted(found)) or 'none'})")
        found[name].parse(raw, plugin)
        return
    readers = [(n, by_name(c.options)[key]) for n, c in sorted(classes.items()) if c.options and key in by_name(c.options)]
    if not readers and not undeclared:
        raise OptionError(f"no installed plugin takes {key!r} (`genpost plugins --options` lists what they take)")
    for who, declared_option in readers:
        declared_option.parse(raw, who)


# ---------------------------------------------------------------- the CLI's own values

X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
# --codec of enhance: the PyAV encoders, stream copy, and libvvenc through the ffmpeg binary
ENHANCE_CODECS = ("libx265", "libx264", "ffv1", "y4m", "copy", "vvc", "libvvenc")


class Choice(StrEnum):
    """A flag's fixed choices: typer lists them in ``--help`` and refuses any other value (exit 2); ``parse``
    is the same check for values that do not come through typer (a manifest's)."""

    @classmethod
    def parse(cls, value: str, flag: str) -> Self:
        try:
            return cls(value)
        except ValueError:
            raise OptionError(f"{flag} {value}: use one of {', '.join(cls)}") from None


class Carriage(Choice):
    """How the side info travels with the stream (docs/bitstream.md)."""

    SEI = "sei"
    NNPFC = "nnpfc"  # H.274 NNPFC/NNPFA declaring the chain, records in SEI
    TRACK = "track"
    SIDECAR = "sidecar"


class InBandCarriage(Choice):
    """The carriages a raw .265/.266 stream can hold (``eval``'s points are raw streams)."""

    SEI = "sei"
    NNPFC = "nnpfc"


class PluginErrorPolicy(Choice):
    """What a plugin that raises does to the job: fail it, or skip the plugin for that frame (counted)."""

    FAIL = "fail"
    SKIP = "skip"


class Target(Choice):
    """What the encoder's choices minimise (the ``target`` job option every plugin sees)."""

    FIDELITY = "fidelity"
    PERCEPTION = "perception"


class PreviewMode(Choice):
    """How ``preview`` shows the restored frame beside its base."""

    SIDE = "side"
    SPLIT = "split"
    DIFF = "diff"


# options of the whole job that every plugin sees (Context.options, bare key): set by their own flags
JOB_OPTIONS = (
    choice("target", Target.FIDELITY.value, [t.value for t in Target],
           "what the encoder's choices minimise: fidelity = SSE per plane; perception = SSE plus the perceptual "
           "term of genpost.learned.blocks (texture energy), so generative modes can win"),
)  # fmt: skip


def check_choice(flag: str, value: str | None, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        raise OptionError(f"{flag} {value}: use one of {', '.join(allowed)}")


def check_range(flag: str, value: float | None, lo: float, hi: float, what: str = "") -> None:
    if value is not None and not lo <= value <= hi:
        raise OptionError(f"{flag} {_fmt(value)}: must be in {_fmt(lo)}..{_fmt(hi)}{what}")


def check_encoder(codec: str | None, qp: float | None, crf: float | None, preset: str | None, qp_flag: str = "--qp") -> None:
    """The output encoder's values: QP 0..51 (x264/x265; VVC 0..63), CRF 0..51, the encoder's presets."""

    codec = (codec or "libx265").lower()
    check_choice("--codec", codec, ENHANCE_CODECS + ("hevc", "h264"))
    vvc = codec in ("vvc", "libvvenc")
    check_range(qp_flag, qp, 0, 63 if vvc else 51, " (VVC)" if vvc else "")
    check_range("--crf", crf, 0, 51)
    if codec in ("libx265", "hevc", "libx264", "h264"):
        check_choice("--preset", preset, X26X_PRESETS)
    elif vvc:
        check_choice("--preset", preset, VVENC_PRESETS)
