"""The one way plugins load weights: safetensors or ONNX files whose sha256 matches what they declare.

Model files are untrusted input. A pickle (``.pt``, ``.pth``, ``.pkl``, ``.ckpt``, ``.bin``, or any file
whose bytes look like a pickle or a zipped torch checkpoint) can run code when it is loaded, so genpost
refuses it whatever its name. The file is read once, hashed, and the same bytes are parsed, so it cannot
be swapped between the check and the load. safetensors, onnxruntime and torch are optional: each is
imported only when a plugin asks for that kind of file (``genpost.install.hint``).

    class MyNet(PostProcessor):
        weights = (WeightsFile("models/mynet.safetensors", "9f86d08..."),)

        def setup(self, device):
            tensors = genpost.learned.weights.load(self)  # dict of numpy arrays, sha256 checked
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..install import hint
from ..plugins import PluginError
from ..postprocessor import WeightsFile

PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib", ".npy", ".npz"}
SAFE_SUFFIXES = {".safetensors": "safetensors", ".onnx": "onnx"}
MAX_WEIGHTS_BYTES = 8 << 30  # refuse to read more than 8 GiB into memory


class WeightsError(PluginError):
    """A weights file is missing, refused (pickle), or does not match its declared sha256 (exit code 5)."""


def resolve(owner, entry: WeightsFile) -> Path:
    """An absolute path as is; a relative one against the folder of the module that defines ``owner``
    (a PostProcessor class or instance), i.e. inside the plugin's package."""
    path = Path(os.path.expanduser(entry.path))
    if path.is_absolute():
        return path
    cls = owner if isinstance(owner, type) else type(owner)
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None) if module is not None else None
    base = Path(file).parent if file else Path.cwd()
    return base / path


def read_verified(path: str | os.PathLike, sha256: str) -> bytes:
    """The file's bytes, after refusing pickles and checking the sha256 (hex, case-insensitive)."""
    path = Path(path)
    kind = SAFE_SUFFIXES.get(path.suffix.lower())
    if path.suffix.lower() in PICKLE_SUFFIXES or kind is None:
        raise WeightsError(
            f"{path.name}: refused: genpost loads weights only from .safetensors or .onnx files "
            "(pickled checkpoints can run code when loaded; convert with safetensors.torch.save_file)"
        )
    if not sha256 or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
        raise WeightsError(f"{path.name}: the plugin declares no valid sha256 for it")
    try:
        size = path.stat().st_size
        if size > MAX_WEIGHTS_BYTES:
            raise WeightsError(f"{path.name}: {size} bytes is more than the {MAX_WEIGHTS_BYTES} a weights file may have")
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights {path}: {exc.strerror or exc}") from None
    if _looks_pickled(data):
        raise WeightsError(f"{path.name}: refused: the file is a pickle or a torch checkpoint, not {kind}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256.lower():
        raise WeightsError(f"{path.name}: sha256 {digest} does not match the declared {sha256.lower()}")
    return data


def _looks_pickled(data: bytes) -> bool:
    """Pickle protocol 2+ starts with 0x80 <proto>; torch.save writes a zip holding data.pkl."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return True
    return data[:4] == b"PK\x03\x04" and b"data.pkl" in data[:4096]


def load_safetensors(path: str | os.PathLike, sha256: str, framework: str = "numpy") -> dict:
    """Tensors by name from a verified safetensors file (``framework``: numpy, or pt for torch tensors)."""
    data = read_verified(path, sha256)
    if Path(path).suffix.lower() != ".safetensors":
        raise WeightsError(f"{Path(path).name}: not a .safetensors file")
    load: Callable[[bytes], dict]
    try:
        if framework == "numpy":
            from safetensors.numpy import load as load_numpy

            load = load_numpy
        elif framework in ("pt", "torch"):
            from safetensors.torch import load as load_torch

            load = load_torch
        else:
            raise WeightsError(f"unknown framework {framework!r}; use numpy or pt")
    except ImportError as exc:
        raise WeightsError(f"loading {Path(path).name} needs {exc.name}: {hint('weights')}") from None
    try:
        return load(data)
    except Exception as exc:  # a damaged or hostile header must not escape as a crash
        raise WeightsError(f"{Path(path).name}: not a valid safetensors file ({exc})") from None


def onnx_session(path: str | os.PathLike, sha256: str, providers: list[str] | None = None, replace: list | None = None):
    """An onnxruntime InferenceSession built from the verified bytes (CPU unless ``providers`` say else).
    ``replace``: (stored tensor, new values) pairs, e.g. a content-adapted copy of the weights, written into
    those bytes by ``patch_tensors`` before the session is built."""
    data = read_verified(path, sha256)
    if Path(path).suffix.lower() != ".onnx":
        raise WeightsError(f"{Path(path).name}: not an .onnx file")
    if replace:
        data = patch_tensors(data, replace, Path(path).name)
    try:
        import onnxruntime
    except ImportError:
        raise WeightsError(f"running {Path(path).name} needs onnxruntime: {hint('onnx')}") from None
    try:
        return onnxruntime.InferenceSession(data, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:
        raise WeightsError(f"{Path(path).name}: not a valid ONNX model ({str(exc).splitlines()[0]})") from None


def patch_tensors(data: bytes, replace: list, name: str = "model") -> bytes:
    """The model with each stored float32 tensor's values overwritten in place by its new values.

    Same shape, same bytes count: the protobuf stays valid and every graph optimisation (including
    onnxruntime's weight pre-packing, which ignores ``SessionOptions.add_initializer`` overrides) sees the new
    values. Each old tensor's bytes must occur exactly once in the file, or the patch is refused."""
    out = bytearray(data)
    for old, new in replace:
        a = np.ascontiguousarray(old, "<f4").tobytes()
        b = np.ascontiguousarray(new, "<f4").tobytes()
        if a == b:
            continue
        at = data.find(a)
        if len(a) != len(b) or at < 0 or data.find(a, at + 1) >= 0:
            raise WeightsError(f"{name}: cannot locate a weight tensor exactly once to update it")
        out[at : at + len(a)] = b
    return bytes(out)


def load(owner, name: str | None = None, framework: str = "numpy", providers: list[str] | None = None, replace: list | None = None):
    """Load one of the files a PostProcessor declares in ``weights`` (the only one, or the one whose
    file name is ``name``): a dict of tensors for safetensors, an InferenceSession for ONNX."""
    declared = tuple(getattr(owner, "weights", ()) or ())
    chosen = [w for w in declared if name is None or Path(w.path).name == name]
    who = getattr(owner, "name", None) or getattr(type(owner), "name", "plugin")
    if len(chosen) != 1:
        what = f"no weights named {name!r}" if name else f"{len(declared)} weights files (give a name)"
        raise WeightsError(f"plugin {who} declares {what}")
    entry = chosen[0]
    path = resolve(owner, entry)
    if path.suffix.lower() == ".onnx":
        return onnx_session(path, entry.sha256, providers, replace)
    return load_safetensors(path, entry.sha256, framework)
