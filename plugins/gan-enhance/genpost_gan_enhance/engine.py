"""The generator as a ``genpost.learned.modeling.Network``: onnxruntime (default) or torch, on overlapping tiles,
weights loaded only through ``genpost.learned.weights`` (sha256 checked)."""

from __future__ import annotations

from genpost.learned.modeling import NetworkSpec

FILES = ("gan_enhance_v1.onnx", "gan_enhance_v1.safetensors")
HALO = 8  # > the generator's receptive radius (7 convs of 3x3 at chroma resolution): tiles join exactly
TILE = 256  # tile side at chroma resolution (512 luma samples)

# ``Engine(owner, backend="onnx", device="cpu", precision="fp32")``: ``engine(packed (7, h, w)) -> residuals (12, h, w)``
Engine = NetworkSpec("gan-enhance", FILES, f"{__package__}.model:Generator", 12, HALO, TILE)
pick, make_generator = Engine.pick, Engine.make_module
