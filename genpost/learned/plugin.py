"""What every learned plugin package writes the same way: its ``register_postprocessors`` hook, its
weights folder and their ``SHA256SUMS``, how it reads its declared options and the QP it conditions on,
and the base class its post-processor builds on (``LearnedPostProcessor``, declared by one ``Kit``).

The hook is made by one call instead of the same boilerplate in every ``__init__.py``:

    from genpost.learned.plugin import register_hook
    from .postprocessor import MyFilter

    api_version = 1  # the genpost plugin API the package is written for
    __version__ = MyFilter.version
    register_postprocessors = register_hook(MyFilter)

The result is an ordinary ``@hookimpl`` function: pluggy finds it under the module attribute name
``register_postprocessors`` when genpost registers the package through its ``genpost`` entry point, exactly
as if it were written out by hand.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .. import options as opt
from ..hookspecs import hookimpl
from ..options import Option, Value
from ..postprocessor import Context, PostProcessor, WeightsFile
from ..types import Frame
from .adapt import AdaptSpec
from .adaptive import AdaptiveNetwork
from .modeling import Network, NetworkSpec

T = TypeVar("T")
SUMS = "SHA256SUMS"  # the weights folder's manifest, as ``sha256sum`` writes it: one "HEX  NAME" line a file
_SUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *]([^/\\]+)")


def register_hook(*classes):
    """A ``register_postprocessors`` hook implementation that registers ``classes``, in order."""

    @hookimpl
    def register_postprocessors(register):
        for cls in classes:
            register(cls)

    return register_postprocessors


def weights_dir(module_file: str) -> Path:
    """The ``weights`` folder beside a plugin module (pass ``__file__``), as an absolute path:
    genpost.learned.weights resolves a relative path against the module of the instance's class, which for a
    subclass defined elsewhere (the contract kit's tracer) is not the plugin's package."""
    return Path(module_file).resolve().parent / "weights"


def read_sums(path: Path) -> dict[str, str]:
    """A ``SHA256SUMS`` manifest (``sha256sum`` format, checkable with ``sha256sum -c``): file name ->
    sha256, in the file's order; a line that is not "HEX  NAME" (a plain name in that folder) is refused."""
    from .weights import WeightsError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the weights manifest ({exc.strerror})") from None
    digests = {}
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            found = _SUM_LINE.fullmatch(line)
            if found is None or found[2] in (".", ".."):
                raise WeightsError(f"{path}:{number}: not a 'SHA256  NAME' line")
            digests[found[2]] = found[1].lower()
    return digests


def shipped_weights(module_file: str, digests: Mapping[str, str] | None = None) -> tuple[WeightsFile, ...]:
    """``PostProcessor.weights`` for files in the ``weights`` folder beside a plugin module (pass
    ``__file__``): file name -> sha256, in order; by default the folder's ``SHA256SUMS``. The files are
    checked against these digests whenever they load (``genpost.learned.weights``)."""
    folder = weights_dir(module_file)
    if digests is None:
        digests = read_sums(folder / SUMS)
    return tuple(WeightsFile(str(folder / name), digest) for name, digest in digests.items())


def option_reader(plugin: str, declared: Iterable[Option]) -> Callable[[Context, str], Value]:
    """``read(ctx, key)``: the plugin's option ``key`` parsed by its declaration (``Context.value``), so a
    plugin names its options once, in ``declared``."""
    found = opt.by_name(declared)

    def read(ctx: Context, key: str) -> Value:
        return ctx.value(plugin, found[key])

    return read


def base_qp(ctx: Context, default: int) -> int:
    """The base's QP clamped to 0..63 when the job knows it, else ``default`` (a plugin's ``qp`` option)."""
    return min(max(int(ctx.qp), 0), 63) if ctx.qp is not None else default


@dataclass(frozen=True)
class Kit:
    """A learned plugin's declarations, made once in its postprocessor module: ``who``, the prefix of its
    options (its name; a subclass under another name, such as genpost.testing's tracer, still reads these
    options), the ``options`` it declares, the ``weights`` it ships, and ``network``, the network content
    adaptation tunes (``spec``, ``genpost.learned.adaptive``); the sha256 of that network's safetensors
    file tags the updates."""

    who: str
    options: tuple[Option, ...]
    weights: tuple[WeightsFile, ...]
    network: NetworkSpec
    spec: AdaptSpec

    @cached_property
    def read(self) -> Callable[[Context, str], Value]:
        """``read(ctx, key)``: the option ``key`` parsed by its declaration (``option_reader``)."""
        return option_reader(self.who, self.options)

    @property
    def adapted_sha256(self) -> str:
        """The sha256 of ``network``'s safetensors file (what content updates apply to)."""
        tensors = self.network.files[1]
        (sha256,) = (w.sha256 for w in self.weights if Path(w.path).name == tensors)
        return sha256

    def adaptive(self) -> AdaptiveNetwork:
        return AdaptiveNetwork(self.who, self.spec, self.adapted_sha256)


def frame_key(frame: Frame, *more: Hashable) -> tuple:
    """What tells one decoded frame from another for a per-frame cache (index, depth, size, the planes'
    CRC-32), after ``more`` (the network, the update in force: what else the cached values depend on)."""
    return (*more, frame.index, frame.bit_depth, frame.y.shape, *(zlib.crc32(p.tobytes()) for p in frame.planes))


def update_key(ctx: Context) -> int | None:
    """The CRC-32 of the period's update in force (None: the shipped weights), for cache keys."""
    return zlib.crc32(ctx.update) if ctx.update is not None else None


class FrameMemo:
    """Values computed for the current frame only: ``get`` computes one once per key, and forgets them
    all when a frame with another ``frame_key`` comes."""

    def __init__(self) -> None:
        self._frame: tuple | None = None
        self._values: dict[Hashable, Any] = {}

    def get(self, frame: tuple, key: Hashable, compute: Callable[[], T]) -> T:
        if frame != self._frame:
            self._frame, self._values = frame, {}
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]


class LearnedPostProcessor(PostProcessor):
    """The base of a learned plugin's class. The class sets ``kit`` (its ``Kit``) besides its name,
    version, side-info format and description, and takes ``weights`` and ``options`` from it. An instance
    holds its networks (``network``: built on first use per backend and precision, on the device ``setup``
    was given), a ``FrameMemo`` (``_memo``) and its content adaptation (``_adaptive``)."""

    kit: ClassVar[Kit]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "kit" in vars(cls):  # the plugin's class; a subclass of it (the tracer) inherits them
            cls.weights, cls.options = cls.kit.weights, cls.kit.options

    def __init__(self) -> None:
        self._device = "cpu"
        self._networks: dict[tuple[NetworkSpec, str, str], Network] = {}
        self._memo = FrameMemo()
        self._adaptive = self.kit.adaptive()

    def setup(self, device: str = "cpu") -> None:
        """Build the adapted network on ``device`` with the default backend (the others on first use)."""
        self._device, self._networks = device, {}
        self.network(self.kit.network, str(opt.defaults(self.kit.options)["backend"]))

    def adapted(self, ctx: Context, precision: str = "fp32") -> Network:
        """``kit.network`` on the backend the options ask for: with the shipped weights, or with the
        period's update applied where ``ctx.update`` holds one (``genpost.learned.adaptive``)."""
        shipped = self.network(self.kit.network, str(self.kit.read(ctx, "backend")), precision)
        return self._adaptive.engine(shipped, ctx.update)

    def network(self, spec: NetworkSpec, requested: str, precision: str = "fp32") -> Network:
        """``spec``'s network on the ``requested`` backend, or the other where its runtime is missing."""
        key = (spec, spec.pick(requested), precision)
        if key not in self._networks:
            self._networks[key] = spec(self, key[1], self._device, precision)
        return self._networks[key]
