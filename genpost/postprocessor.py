"""The base class every post-processor implements, and what it is told about the job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import PayloadError
from .options import Option, Value
from .types import Frame, StreamInfo

__all__ = ["Context", "PayloadError", "PostProcessor", "WeightsFile"]


@dataclass(frozen=True)
class WeightsFile:
    """A weights file a plugin ships, pinned by its sha256 (loaded only through ``genpost.learned.weights``)."""

    path: str
    sha256: str


@dataclass
class Context:
    """Per-job facts a plugin may use; the same object is passed to ``analyze`` and ``restore``."""

    stream: StreamInfo
    qp: int | None = None  # the base's QP where known (encode, eval); None at the decoder: carry it if needed
    options: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    # encoder side: the payload in force from an earlier frame (return it again to extend its record
    # over this frame at no cost) and the fixed bits a new record costs with the chosen carriage
    previous_payload: bytes | None = None
    record_overhead_bits: int = 0
    # content adaptation: the weight update in force for this frame's period (None: the shipped weights),
    # at the encoder (analyze) and the decoder (restore); in ``adapt``, the frames the update will serve
    update: bytes | None = None
    period_frames: int = 0
    # encoder: the base's mean bits per frame (None where unknown), so side info can be charged what it
    # costs in BD-rate terms (``genpost.rdcost.plane_lambdas``)
    base_bits: float | None = None

    @property
    def target(self) -> str:
        """The job's ``--target``: ``fidelity`` (the default: SSE per plane) or ``perception``."""
        return str(self.options.get("target", "fidelity"))

    def option(self, plugin: str, key: str, default: str) -> str:
        """``--option PLUGIN.KEY=VALUE``, else the bare ``KEY`` (what ``genpost pipe --strength`` sets),
        else ``default``."""
        return str(self.options.get(f"{plugin}.{key}", self.options.get(key, default)))

    def number(self, plugin: str, key: str, default: str, lo: float, hi: float, integer: bool = False) -> float:
        """``option`` as a number in ``lo..hi`` (an int when ``integer``); else a ValueError naming it."""
        raw = self.option(plugin, key, default)
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{plugin}.{key} must be a number, not {raw!r}") from None
        if not lo <= value <= hi or (integer and value != int(value)):
            raise ValueError(f"{plugin}.{key} must be {'an integer ' if integer else ''}in {lo}..{hi}, not {raw}")
        return int(value) if integer else value

    def value(self, plugin: str, declared: Option) -> Value:
        """The option ``declared`` (``genpost.options``) parsed by its declaration: a float, int or str."""
        return declared.parse(self.option(plugin, declared.name, declared.default), plugin)

    @property
    def lagrangian(self) -> float:
        """HM's lambda (0.57 * 2^((QP-12)/3)) in squared error of the stream's bit depth per bit.

        Post-processors use it to decide whether side info pays: send it where
        ``SSE_with + lambda * bits < SSE_without``.
        """
        qp = 32 if self.qp is None else self.qp
        scale = float(1 << (2 * (self.stream.bit_depth - 8)))
        return 0.57 * 2.0 ** ((qp - 12) / 3.0) * scale


class PostProcessor:
    """Restores decoded frames, optionally guided by a payload its ``analyze`` computed at the encoder.

    Subclasses set the class attributes and override ``restore`` (and ``analyze`` if they send side info).
    Import torch or load weights in ``setup``, never at import time, so ``genpost --help`` stays fast.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    side_info: ClassVar[str | None] = None  # versioned format id such as "wiener/1"; None = sends nothing
    description: ClassVar[str] = ""
    weights: ClassVar[tuple[WeightsFile, ...]] = ()
    # What ``--carriage nnpfc`` declares in the plugin's H.274 NNPFC (genpost.runner.declared); None = unknown.
    default_mode: ClassVar[bool] = True  # restore(payload=None) enhances; False: a frame without payload is "off"
    parameter_count: ClassVar[int | None] = None  # network parameters
    kmac_per_pixel: ClassVar[float | None] = None  # thousands of multiply-accumulates per luma sample
    patch_size: ClassVar[tuple[int, int] | None] = None  # (width, height) of one inference tile in tensor
    # samples (4:2:0 packed: chroma resolution); None: the whole picture in one patch
    patch_overlap: ClassVar[int] = 0  # halo around each tile, tensor samples
    strength_input: ClassVar[bool] = False  # the network takes a constant strength/QP plane (auxiliary input)
    # the ``--option NAME.KEY=VALUE`` keys it reads (``genpost.options``), checked by the CLI before a job
    # starts; None: not declared (any key passes unchecked)
    options: ClassVar[tuple[Option, ...] | None] = None
    # the options (KEY: VALUE, declared in ``options``) under which a frame without side info is restored by
    # the network, where the default mode leaves it as decoded (e.g. gan-enhance's strength=1): what
    # ``genpost bench`` times when given no --option, so it never times the identity; {}: the default restores
    restoring_options: ClassVar[dict[str, str]] = {}

    def setup(self, device: str = "cpu") -> None:
        """Load models; called once before the first frame."""

    def analyze(self, source: Frame, decoded: Frame, ctx: Context) -> bytes:
        """Encoder side: the payload for this frame (``b""`` sends nothing for it)."""
        return b""

    def adapt(self, pairs: Sequence[tuple[Frame, Frame]], ctx: Context) -> bytes:
        """Encoder side, once per period (keyframe to keyframe): a weight update tuned on ``pairs``, an
        evenly spread sample of the period's (source, decoded) frames, sent once at the period's start and
        in force for its ``ctx.period_frames`` frames (``b""``: none). ``analyze`` and ``restore`` find it
        in ``ctx.update``. See ``genpost.learned``."""
        return b""

    def restore(self, decoded: Frame, payload: bytes | None, ctx: Context) -> Frame:
        """Decoder side: the restored frame; ``payload`` is None when no side info reached this frame."""
        raise NotImplementedError
