"""The plugin contract's checks as plain functions (no pytest needed): each ``check_*`` raises
``ContractViolation`` (an AssertionError) with a one-line reason. genpost.testing runs them as pytest tests
(``PostProcessorContract``) on frames genpost's own pipeline made."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np

from . import __api_version__, media, plugins
from .errors import GenpostError
from .postprocessor import Context, PayloadError, PostProcessor, WeightsFile
from .types import Frame

CLIP = Path(__file__).parent / "data" / "carphone_176x144_6f.y4m"
"""6 frames of the carphone sequence (176x144, 8-bit 4:2:0, 30000/1001 fps): the kit's real source."""

HEAVY_MODULES = ("torch", "tensorflow", "jax", "onnxruntime")
"""Frameworks a plugin may import in ``setup`` but never at import time (``genpost --help`` stays fast)."""

CARRIAGES = (("sei", ".mkv"), ("track", ".mp4"), ("track", ".mkv"), ("sidecar", ".mkv"))
"""(carriage, container) pairs the round trip covers: SEI, MP4 data track, MKV BlockAdditional, sidecar."""

_FORMAT_ID = re.compile(r"^[\x21-\x7e]{1,64}$")
_VERSIONED = re.compile(r"/[0-9]+$")


class ContractViolation(GenpostError, AssertionError):
    """A plugin broke the genpost plugin contract; the message says which rule and where."""


# ---------------------------------------------------------------- checks on the class


def check_declaration(cls: type) -> None:
    """Class attributes a plugin must get right before anything runs."""
    if not (isinstance(cls, type) and issubclass(cls, PostProcessor)):
        raise ContractViolation(f"{cls!r} is not a genpost.PostProcessor subclass")
    if not isinstance(cls.name, str) or not cls.name or cls.name != cls.name.strip() or " " in cls.name:
        raise ContractViolation(f"{cls.__name__}.name must be a non-empty name without spaces, got {cls.name!r}")
    if cls.name == "none":
        raise ContractViolation("'none' is reserved (genpost enhance --plugin none re-muxes)")
    if not isinstance(cls.version, str) or not cls.version:
        raise ContractViolation(f"{cls.__name__}.version must be a non-empty string, got {cls.version!r}")
    fid = cls.side_info
    if fid is not None:
        if not isinstance(fid, str) or not _FORMAT_ID.match(fid):
            raise ContractViolation(f"side_info {fid!r} must be 1..64 printable ASCII characters without spaces")
        if not _VERSIONED.search(fid):
            raise ContractViolation(f"side_info {fid!r} must end in a format version, like '{cls.name}/1'")
    if not all(isinstance(w, WeightsFile) for w in cls.weights):
        raise ContractViolation(f"{cls.__name__}.weights must hold genpost.WeightsFile entries")
    declared = getattr(cls, "api_version", None)
    if declared is not None and declared != __api_version__:
        raise ContractViolation(f"{cls.__name__}.api_version is {declared!r}; this genpost provides {__api_version__}")
    if cls.restore is PostProcessor.restore:
        raise ContractViolation(f"{cls.__name__} does not implement restore()")


def plugin_modules(cls: type) -> list[str]:
    """The module defining ``cls`` and, when an installed entry point registers it, that entry point's."""
    modules = [cls.__module__]
    for reg in plugins.postprocessors().values():
        if reg.cls is cls:
            for ep in entry_points(group=plugins.ENTRY_POINT_GROUP, name=reg.plugin):
                modules.append(ep.module)
    return list(dict.fromkeys(modules))


def check_import_without_torch(modules: list[str]) -> None:
    """Import the modules in a fresh interpreter and fail if that pulled in torch (or another framework)."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ContractViolation(f"importing {', '.join(modules)} failed: {last}")
    heavy = json.loads(run.stdout.strip().splitlines()[-1])
    if heavy:
        raise ContractViolation(f"importing {', '.join(modules)} imports {', '.join(heavy)}; import it in setup()")


def weights_path(cls: type, weights: WeightsFile) -> Path:
    """Where a declared weights file lives: absolute, or relative to the folder of the module defining ``cls``."""
    path = Path(weights.path)
    if path.is_absolute():
        return path
    module = sys.modules.get(cls.__module__)
    base = Path(getattr(module, "__file__", None) or ".").resolve().parent
    return base / path


def check_weights(cls: type[PostProcessor]) -> None:
    """Every declared weights file exists and its sha256 is the declared one."""
    for w in cls.weights:
        path = weights_path(cls, w)
        if not path.is_file():
            raise ContractViolation(f"declared weights {w.path} not found at {path}")
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != w.sha256.lower():
            raise ContractViolation(f"weights {w.path}: sha256 {digest.hexdigest()} != declared {w.sha256}")


# ---------------------------------------------------------------- checks on frames


def frame_digest(frame: Frame) -> str:
    h = hashlib.sha256()
    for plane in frame.planes:
        h.update(f"{plane.shape}{plane.dtype}".encode())
        h.update(np.ascontiguousarray(plane).tobytes())
    return h.hexdigest()


def check_restored_frame(before: Frame, after, who: str) -> None:
    """``after`` is a Frame like ``before``: same plane shapes and dtypes, bit depth, index, pts, time base,
    and samples within the bit depth's range."""
    if not isinstance(after, Frame):
        raise ContractViolation(f"{who} returned {type(after).__name__}, not a genpost.Frame")
    for name, a, b in zip("yuv", before.planes, after.planes):
        if not isinstance(b, np.ndarray) or b.shape != a.shape or b.dtype != a.dtype:
            got = f"{b.shape} {b.dtype}" if isinstance(b, np.ndarray) else type(b).__name__
            raise ContractViolation(f"{who} changed plane {name} from {a.shape} {a.dtype} to {got}")
        if b.size and int(b.max()) > before.max_value:
            raise ContractViolation(f"{who}: plane {name} holds {int(b.max())} > {before.max_value} ({before.bit_depth}-bit)")
    for attr in ("bit_depth", "index", "pts", "time_base"):
        if getattr(after, attr) != getattr(before, attr):
            raise ContractViolation(f"{who} changed {attr} from {getattr(before, attr)!r} to {getattr(after, attr)!r}")


def check_restore(proc: PostProcessor, decoded: Frame, payload: bytes | None, ctx: Context, what: str = "") -> Frame:
    """One ``restore`` call that must return a valid frame and leave its input untouched."""
    who = f"{type(proc).__name__}.restore(frame {decoded.index}{', ' + what if what else ''})"
    digest = frame_digest(decoded)
    try:
        out = proc.restore(decoded, payload, ctx)
    except PayloadError:
        if payload is None:
            raise ContractViolation(f"{who} raised PayloadError without a payload; it needs a default mode") from None
        raise
    check_restored_frame(decoded, out, who)
    if frame_digest(decoded) != digest:
        raise ContractViolation(f"{who} modified its input frame in place")
    return out


def malformed_variants(payload: bytes, seed: int = 0) -> list[tuple[str, bytes]]:
    """Damaged versions of a real payload (truncations, bit flips, junk) and unrelated bytes."""
    rng = random.Random(seed)
    out = [("empty payload", b""), ("one zero byte", b"\x00"), ("one 0xff byte", b"\xff")]
    n = len(payload)
    if n:
        for cut in sorted({1, n // 2, n - 1} - {0, n}):
            out.append((f"truncated to {cut} of {n} bytes", payload[:cut]))
        out.append(("one extra zero byte", payload + b"\x00"))
        out.append(("16 bytes of trailing junk", payload + rng.randbytes(16)))
        for i in sorted({0, n // 2, n - 1} | {rng.randrange(n) for _ in range(3)}):
            for bit in (0x80, 0x01):
                flipped = bytearray(payload)
                flipped[i] ^= bit
                out.append((f"bit {bit:#04x} of byte {i} flipped", bytes(flipped)))
        out += [("all zero", bytes(n)), ("all 0xff", b"\xff" * n)]
    out += [(f"{k} random bytes", rng.randbytes(k)) for k in (3, 17, 255, 4096)]
    return out


def check_malformed_payloads(proc: PostProcessor, decoded: Frame, payload: bytes, ctx: Context, seed: int = 0) -> int:
    """Every damaged payload makes ``restore`` raise PayloadError or return a valid frame; returns how
    many were tried."""
    variants = malformed_variants(payload, seed)
    for what, bad in variants:
        try:
            check_restore(proc, decoded, bad, ctx, what)
        except PayloadError:
            continue
        except ContractViolation:
            raise
        except Exception as exc:
            raise ContractViolation(
                f"{type(proc).__name__}.restore(frame {decoded.index}, {what}) raised "
                f"{type(exc).__name__}: {exc}; raise genpost.PayloadError for payloads it cannot use"
            ) from exc
    return len(variants)


def check_round_trip(analyzed: dict[int, bytes], received: dict[int, bytes | None], frames: int, where: str) -> None:
    """``restore`` saw, for every frame, exactly the payload ``analyze`` made for it (None where it sent none)."""
    missing = [i for i in range(frames) if i not in received]
    if missing:
        raise ContractViolation(f"{where}: restore was not called for frames {missing}")
    wrong = [i for i in range(frames) if received[i] != (analyzed.get(i) or None)]
    if wrong:
        i = wrong[0]
        raise ContractViolation(
            f"{where}: frames {wrong} got other payloads than analyze made "
            f"(frame {i}: sent {_short(analyzed.get(i) or None)}, received {_short(received[i])})"
        )


def check_same_frames(expected: dict[int, str], path: Path, where: str, fps=None) -> None:
    """The frames decoded from ``path`` (plain decode, no plugin) have exactly the expected digests."""
    with media.InputFile(path, fps) as inp:
        got = {f.index: frame_digest(f) for f in inp.frames()}
    if len(got) != len(expected):
        raise ContractViolation(f"{where}: {len(got)} frames decoded, expected {len(expected)}")
    differ = [i for i in expected if got.get(i) != expected[i]]
    if differ:
        raise ContractViolation(f"{where}: frames {differ} differ")


def _short(payload: bytes | None) -> str:
    if payload is None:
        return "nothing"
    return f"{len(payload)} bytes {payload[:8].hex()}{'...' if len(payload) > 8 else ''}"
