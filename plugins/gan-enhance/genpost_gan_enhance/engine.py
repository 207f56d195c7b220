"""The generator as a ``genpost.modeling.Network``: onnxruntime (default) or torch, on overlapping tiles,
weights loaded only through ``genpost.weights`` (sha256 checked)."""

from __future__ import annotations

from genpost.modeling import Network, pick_backend

ONNX_FILE = "gan_enhance_v1.onnx"
SAFETENSORS_FILE = "gan_enhance_v1.safetensors"
HALO = 8  # > the generator's receptive radius (7 convs of 3x3 at chroma resolution): tiles join exactly
TILE = 256  # tile side at chroma resolution (512 luma samples)


def pick(requested: str) -> str:
    return pick_backend(requested, "gan-enhance")


def make_generator():
    from .model import Generator

    return Generator()


def Engine(owner, backend: str = "onnx", device: str = "cpu", precision: str = "fp32") -> Network:  # noqa: N802
    """``engine(packed (7, h, w)) -> residuals (12, h, w)``."""
    return Network(owner, "gan-enhance", ONNX_FILE, SAFETENSORS_FILE, make_generator, 12, HALO, TILE, backend, device, precision)
