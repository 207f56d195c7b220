"""Contract tests every genpost plugin must pass, shipped to plugin authors (needs pytest).

Subclass the base class in your plugin's tests and name your post-processor::

    from genpost.testing import PostProcessorContract
    from my_plugin import MyFilter

    class TestMyFilterContract(PostProcessorContract):
        postprocessor = MyFilter

The tests run the plugin on real frames: a 6-frame carphone clip shipped with genpost, coded by x265
through genpost's own pipeline at 8 and 10 bits, its side info carried in every carriage and read back
through ``genpost.jobs.enhance.enhance``. Each check is also a plain ``check_*`` function that raises
``ContractViolation`` (an AssertionError) with a one-line reason, so it can be used outside pytest.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from . import media, plugins
from .contract import (
    CARRIAGES,
    CLIP,
    HEAVY_MODULES,
    ContractViolation,
    check_declaration,
    check_import_without_torch,
    check_malformed_payloads,
    check_restore,
    check_restored_frame,
    check_round_trip,
    check_same_frames,
    check_weights,
    frame_digest,
    malformed_variants,
    plugin_modules,
    weights_path,
)
from .jobs.encode import encode
from .jobs.enhance import enhance
from .options import PluginErrorPolicy
from .postprocessor import Context, PayloadError, PostProcessor
from .runner.loop import PluginFailure
from .types import Frame, StreamInfo, to_bit_depth

# ---------------------------------------------------------------- running a plugin through the pipeline


@dataclass
class Trace:
    """What a plugin was given and gave back while genpost.jobs.pipeline ran it."""

    inputs: dict[int, tuple[Frame, Frame, Context]] = field(default_factory=dict)  # index -> source, decoded, ctx
    analyzed: dict[int, bytes] = field(default_factory=dict)
    received: dict[int, bytes | None] = field(default_factory=dict)
    restored: dict[int, str] = field(default_factory=dict)  # index -> digest of the frame restore returned
    enhancing: bool = False


def traced(cls: type[PostProcessor], trace: Trace) -> type[PostProcessor]:
    """A subclass of ``cls`` under its own name that records its calls in ``trace``."""

    class Traced(cls):
        name = f"{cls.name}.contract"

        def analyze(self, source, decoded, ctx):
            digests = frame_digest(source), frame_digest(decoded)
            payload = super().analyze(source, decoded, ctx)
            if (frame_digest(source), frame_digest(decoded)) != digests:
                raise ContractViolation(f"{cls.__name__}.analyze modified its input frames in place")
            if payload is not None and not isinstance(payload, (bytes, bytearray, memoryview)):
                raise ContractViolation(f"{cls.__name__}.analyze returned {type(payload).__name__}, not bytes")
            trace.inputs[decoded.index] = (source, decoded, dataclasses.replace(ctx))
            trace.analyzed[decoded.index] = bytes(payload or b"")
            return payload

        def restore(self, decoded, payload, ctx):
            out = super().restore(decoded, payload, ctx)
            if trace.enhancing:  # analyze may call restore to measure its own distortion
                trace.received[decoded.index] = payload
                trace.restored[decoded.index] = frame_digest(out) if isinstance(out, Frame) else repr(out)
            return out

    Traced.__name__ = Traced.__qualname__ = f"Traced{cls.__name__}"
    return Traced


@dataclass
class Encoded:
    """One ``genpost.jobs.encode.encode`` of the kit's clip with the plugin, and what a plain decode gives."""

    path: Path
    sidecar: str | None
    bit_depth: int
    trace: Trace
    stream: StreamInfo  # as genpost enhance sees the stream
    decoded: list[Frame]  # plain decode of ``path``: the frames restore gets in genpost enhance

    @property
    def frames(self) -> int:
        return len(self.decoded)

    def payload(self, index: int) -> bytes | None:
        return self.trace.analyzed.get(index) or None


@contextlib.contextmanager
def _plugin_errors_as_violations():
    """The pipeline wraps what a plugin raises (PluginFailure); surface the contract's own verdict."""
    try:
        yield
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ContractViolation):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        if isinstance(exc, PluginFailure):
            raise ContractViolation(f"{exc} (restore/analyze may raise only genpost.PayloadError)") from exc
        raise


class ContractRunner:
    """Runs one post-processor class through genpost.jobs.pipeline on the kit's clip, caching every encode."""

    def __init__(self, cls: type[PostProcessor], workdir: Path, qp: int = 37, options: dict[str, str] | None = None):
        self.cls = cls
        self.workdir = Path(workdir)
        self.qp = qp
        self.options = dict(options or {})
        self._encoded: dict[tuple, Encoded] = {}
        self._runs = 0

    def options_for(self, traced_cls: type[PostProcessor]) -> dict[str, str]:
        """The job's options with each ``PLUGIN.KEY`` also under the traced subclass's name, so a plugin
        that reads ``ctx.value(self.name, ...)`` gets them in the kit as it does under genpost."""
        prefix = f"{self.cls.name}."
        renamed = {f"{traced_cls.name}.{k[len(prefix):]}": v for k, v in self.options.items() if k.startswith(prefix)}
        return {**self.options, **renamed}

    def _path(self, stem: str, ext: str) -> Path:
        self._runs += 1
        return self.workdir / f"{self._runs:02d}-{stem}{ext}"

    def encode(self, bit_depth: int = 8, carriage: str = "sei", ext: str = ".mkv") -> Encoded:
        key = (bit_depth, carriage, ext)
        if key not in self._encoded:
            trace = Trace()
            cls = traced(self.cls, trace)
            out = self._path(f"{bit_depth}bit-{carriage}", ext)
            settings = media.EncoderSettings(qp=self.qp, preset="ultrafast", bit_depth=bit_depth)
            with plugins.in_process_plugin("genpost-contract", plugins.Registering(cls)), _plugin_errors_as_violations():
                report = encode(CLIP, out, settings, plugins=[cls.name], carriage=carriage, options=self.options_for(cls))
            with media.InputFile(out) as inp:
                stream, decoded = inp.info, list(inp.frames())
            if len(decoded) != report.frames:
                raise ContractViolation(f"{out.name}: {len(decoded)} frames decoded, {report.frames} encoded")
            self._encoded[key] = Encoded(out, report.sidecar, bit_depth, trace, stream, decoded)
        return self._encoded[key]

    def enhance(self, path: Path, sidecar: str | None = None, fps=None) -> tuple[Trace, Path]:
        """Restore ``path`` with the plugin through genpost.jobs.enhance.enhance into a lossless y4m; any
        exception from the plugin fails, and so does a PayloadError (the kit only sends valid payloads)."""
        trace = Trace(enhancing=True)
        cls = traced(self.cls, trace)
        out = self._path("enhanced", ".y4m")
        with plugins.in_process_plugin("genpost-contract", plugins.Registering(cls)), _plugin_errors_as_violations():
            report = enhance(
                path, out, media.EncoderSettings(codec="y4m"), plugins=[cls.name], sidecar=sidecar, fps=fps,
                options=self.options_for(cls), on_plugin_error=PluginErrorPolicy.FAIL,
            )  # fmt: skip
        stats = report.per_plugin[cls.name]
        if stats.fallbacks:
            raise ContractViolation(
                f"{path.name}: genpost kept the base on {stats.fallbacks} frames: restore raised PayloadError on a "
                "payload analyze made (or on none), or returned a frame of another shape, dtype or bit depth"
            )
        return trace, out

    def remux(self, path: Path, ext: str = ".ts") -> Path:
        """A plain packet-for-packet remux (genpost's copy path, no plugin)."""
        out = self._path("remuxed", ext)
        enhance(path, out, media.EncoderSettings(codec="copy"), plugins=["none"])
        return out

    def decoder_context(self, encoded: Encoded, seed: int = 0, index: int | None = None) -> Context:
        """A Context like the one ``genpost enhance`` gives restore for frame ``index`` (no QP known, the
        job's options, the content-adaptive update the encoder had in force for that frame)."""
        analyzed = encoded.trace.inputs.get(index) if index is not None else None
        update = analyzed[2].update if analyzed is not None else None
        return Context(stream=encoded.stream, options=dict(self.options), seed=seed, update=update)

    # -- checks that need the pipeline

    def check_round_trip(self, encoded: Encoded, path: Path | None = None, where: str = "") -> None:
        path = path or encoded.path
        where = where or f"{encoded.bit_depth}-bit {path.suffix} ({'sidecar' if encoded.sidecar else 'in-band'})"
        trace, out = self.enhance(path, encoded.sidecar)
        check_round_trip(encoded.trace.analyzed, trace.received, encoded.frames, where)
        check_same_frames(trace.restored, out, f"{where}: enhance output vs what restore returned")

    def check_deterministic(self, encoded: Encoded, seed: int) -> None:
        """Two fresh instances given the same inputs and seed make the same payloads and frames."""
        runs = []
        for _ in range(2):
            proc = self.cls()
            proc.setup("cpu")
            payloads, frames = [], []
            for i in sorted(encoded.trace.inputs):
                source, decoded, ctx = encoded.trace.inputs[i]
                payloads.append(bytes(proc.analyze(source, decoded, dataclasses.replace(ctx, seed=seed)) or b""))
            for decoded in encoded.decoded:
                ctx = self.decoder_context(encoded, seed, decoded.index)
                try:
                    frames.append(frame_digest(proc.restore(decoded, encoded.payload(decoded.index), ctx)))
                except PayloadError:
                    frames.append("PayloadError")
            runs.append((payloads, frames))
        (p1, f1), (p2, f2) = runs
        if p1 != p2:
            raise ContractViolation(f"analyze is not deterministic under seed {seed}: frames "
                                    f"{[i for i, (a, b) in enumerate(zip(p1, p2)) if a != b]} differ between runs")
        if f1 != f2:
            raise ContractViolation(f"restore is not deterministic under seed {seed}: frames "
                                    f"{[i for i, (a, b) in enumerate(zip(f1, f2)) if a != b]} differ between runs")


# ---------------------------------------------------------------- the pytest base class

_ROUND_TRIPS = [(8, c, e) for c, e in CARRIAGES] + [(10, "sei", ".mkv")]
_ROUND_TRIP_IDS = [f"{bd}bit-{c}-{e[1:]}" for bd, c, e in _ROUND_TRIPS]


class PostProcessorContract:
    """Contract tests for one post-processor: subclass it as ``Test...`` and set ``postprocessor``.

    Optional class attributes: ``options`` (the ``--option`` pairs used at encode and decode), ``qp``
    (of the x265 base, default 37: pick one where your analyze sends side info), ``seed``.
    """

    postprocessor: ClassVar[type[PostProcessor]]
    options: ClassVar[dict[str, str]] = {}
    qp: ClassVar[int] = 37
    seed: ClassVar[int] = 1234

    @pytest.fixture(scope="class")
    @classmethod
    def contract(cls, tmp_path_factory) -> ContractRunner:
        target = getattr(cls, "postprocessor", None)
        if target is None:
            raise ContractViolation(f"{cls.__name__} must set postprocessor = YourPostProcessor")
        return ContractRunner(target, tmp_path_factory.mktemp("contract"), cls.qp, cls.options)

    def _needs_side_info(self) -> None:
        if self.postprocessor.side_info is None:
            pytest.skip(f"{self.postprocessor.__name__} declares no side_info")

    def test_declaration(self):
        check_declaration(self.postprocessor)

    def test_import_does_not_import_torch(self):
        check_import_without_torch(plugin_modules(self.postprocessor))

    def test_declared_weights_exist_and_match_sha256(self):
        if not self.postprocessor.weights:
            pytest.skip(f"{self.postprocessor.__name__} declares no weights")
        check_weights(self.postprocessor)

    @pytest.mark.parametrize("bit_depth", [8, 10])
    def test_restore_keeps_shape_dtype_depth_index_pts(self, contract, bit_depth):
        enc = contract.encode(bit_depth)
        proc = self.postprocessor()
        proc.setup("cpu")
        for decoded in enc.decoded:
            ctx = contract.decoder_context(enc, self.seed, decoded.index)
            check_restore(proc, decoded, None, ctx, "no payload")
            payload = enc.payload(decoded.index)
            if payload is None:
                continue
            try:
                check_restore(proc, decoded, payload, ctx, "its own payload")
            except PayloadError as exc:
                raise ContractViolation(
                    f"restore rejected the payload analyze made for frame {decoded.index}: {exc}"
                ) from exc

    @pytest.mark.parametrize("bit_depth,carriage,ext", _ROUND_TRIPS, ids=_ROUND_TRIP_IDS)
    def test_side_info_round_trips(self, contract, bit_depth, carriage, ext):
        self._needs_side_info()
        enc = contract.encode(bit_depth, carriage, ext)
        if not any(enc.trace.analyzed.values()):
            pytest.skip(f"analyze sent no side info on the kit's clip at QP {self.qp}")
        contract.check_round_trip(enc, where=f"{bit_depth}-bit {carriage} in {ext}")

    @pytest.mark.parametrize("carriage", ["sei", "sidecar"])
    def test_side_info_survives_plain_remux(self, contract, carriage):
        self._needs_side_info()
        enc = contract.encode(8, carriage, ".mkv")
        if not any(enc.trace.analyzed.values()):
            pytest.skip(f"analyze sent no side info on the kit's clip at QP {self.qp}")
        remuxed = contract.remux(enc.path, ".ts")
        contract.check_round_trip(enc, remuxed, f"{carriage} after a plain MKV -> MPEG-TS remux")

    @pytest.mark.parametrize("bit_depth,carriage,ext", _ROUND_TRIPS, ids=_ROUND_TRIP_IDS)
    def test_plain_decode_equals_base(self, contract, bit_depth, carriage, ext):
        """A decoder that knows nothing of genpost gets exactly the base the plugin's analyze saw."""
        self._needs_side_info()
        enc = contract.encode(bit_depth, carriage, ext)
        base = {i: frame_digest(decoded) for i, (_, decoded, _) in enc.trace.inputs.items()}
        check_same_frames(base, enc.path, f"plain decode of the {bit_depth}-bit {carriage} stream in {ext} vs the base")

    def test_runs_without_side_info(self, contract):
        """The default mode: a stream whose side info is lost (here: its sidecar not beside it) still restores."""
        enc = contract.encode(8, "sidecar", ".mkv")
        alone = enc.path.parent / "alone" / enc.path.name  # enhance finds a sidecar beside the input by name
        alone.parent.mkdir(exist_ok=True)
        if not alone.exists():
            shutil.copyfile(enc.path, alone)
        trace, out = contract.enhance(alone)
        check_round_trip({}, trace.received, enc.frames, "enhance without side info")
        check_same_frames(trace.restored, out, "enhance without side info: output vs what restore returned")

    @pytest.mark.parametrize("bit_depth", [8, 10])
    def test_malformed_payloads_degrade_to_default_mode(self, contract, bit_depth):
        self._needs_side_info()
        enc = contract.encode(bit_depth)
        proc = self.postprocessor()
        proc.setup("cpu")
        sent = [f for f in enc.decoded if enc.payload(f.index)][:2] or enc.decoded[:1]
        for decoded in sent:
            ctx = contract.decoder_context(enc, self.seed, decoded.index)
            check_malformed_payloads(proc, decoded, enc.payload(decoded.index) or b"", ctx, self.seed + decoded.index)

    def test_deterministic_under_seed(self, contract):
        contract.check_deterministic(contract.encode(8), self.seed)


class NetworkContract:
    """Extra contract tests for a plugin that runs a ``genpost.learned.modeling.Network`` (subclass it next to
    ``PostProcessorContract``, set ``postprocessor`` and ``option_prefix``): tiles join to the untiled
    result, the torch path agrees with the ONNX one, and a bad backend name is a clear error.

    ``tolerance``: the largest sample difference allowed between tiled and untiled, and torch and ONNX
    (float rounding of the two runtimes may flip a rounding)."""

    postprocessor: ClassVar[type[PostProcessor]]
    option_prefix: ClassVar[str]
    options: ClassVar[dict[str, str]] = {}
    tolerance: ClassVar[int] = 1

    def _restore(self, frame: Frame, **options) -> Frame:
        proc = self.postprocessor()
        proc.setup("cpu")
        opts = {**self.options, **{f"{self.option_prefix}.{k}": v for k, v in options.items()}}
        info = StreamInfo(frame.width, frame.height, frame.bit_depth, "hevc", None, Fraction(30000, 1001))
        return proc.restore(frame, None, Context(stream=info, qp=37, options=opts))

    def _frame(self, bit_depth: int = 8) -> Frame:
        with media.InputFile(CLIP) as f:
            return to_bit_depth(next(f.frames()), bit_depth)

    @pytest.mark.parametrize("bit_depth", [8, 10])
    def test_tiles_join_to_the_untiled_result(self, bit_depth, monkeypatch):
        from .learned import modeling

        frame = self._frame(bit_depth)
        whole = self._restore(frame)
        small = lambda net, x: modeling.run_tiled(net.run_tile, x, net.out_channels, 24, net.halo, net.multiple)  # noqa: E731
        monkeypatch.setattr(modeling.Network, "__call__", small)  # 88x72 chroma samples -> 4x3 tiles
        tiled = self._restore(frame)
        for a, b in zip(whole.planes, tiled.planes):
            assert int(np.abs(a.astype(np.int32) - b).max()) <= self.tolerance
            assert np.mean(a != b) < 0.001

    def test_torch_backend_matches_onnx(self):
        pytest.importorskip("torch")
        pytest.importorskip("safetensors")
        pytest.importorskip("onnxruntime")
        frame = self._frame()
        a, b = self._restore(frame, backend="onnx"), self._restore(frame, backend="torch")
        assert int(np.abs(a.y.astype(np.int32) - b.y).max()) <= self.tolerance

    def test_unknown_backend_is_a_clear_error(self):
        with pytest.raises(ValueError, match="backend must be one of"):
            self._restore(self._frame(), backend="tpu")


__all__ = [
    "CARRIAGES",
    "CLIP",
    "HEAVY_MODULES",
    "NetworkContract",
    "ContractRunner",
    "ContractViolation",
    "PostProcessorContract",
    "check_declaration",
    "check_import_without_torch",
    "check_malformed_payloads",
    "check_restore",
    "check_restored_frame",
    "check_round_trip",
    "check_same_frames",
    "check_weights",
    "frame_digest",
    "malformed_variants",
    "plugin_modules",
    "weights_path",
]
