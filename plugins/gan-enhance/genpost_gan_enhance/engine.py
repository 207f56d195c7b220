"""Running the generator: onnxruntime (default) or torch, on overlapping tiles, weights loaded only
through ``genpost.weights`` (sha256 checked). onnxruntime / torch are imported here, on first use."""

from __future__ import annotations

import importlib.util

import numpy as np

from genpost import weights
from genpost.modeling import run_tiled

ONNX_FILE = "gan_enhance_v1.onnx"
SAFETENSORS_FILE = "gan_enhance_v1.safetensors"
BACKENDS = ("onnx", "torch")
PRECISIONS = ("fp32", "bf16")  # bf16: torch autocast (CUDA, or CPUs where it measures faster)
HALO = 8  # > the generator's receptive radius (7 convs of 3x3 at chroma resolution): tiles join exactly
TILE = 256  # tile side at chroma resolution (512 luma samples)


def available(backend: str) -> bool:
    return importlib.util.find_spec("onnxruntime" if backend == "onnx" else "torch") is not None


def pick(requested: str) -> str:
    """The requested backend if its runtime is installed, else the other one (a clean fallback)."""
    if requested not in BACKENDS:
        raise ValueError(f"gan-enhance.backend must be one of {', '.join(BACKENDS)}, not {requested!r}")
    if available(requested):
        return requested
    other = BACKENDS[1 - BACKENDS.index(requested)]
    if available(other):
        return other
    raise ImportError("gan-enhance needs onnxruntime (pip install onnxruntime) or torch")


class Engine:
    """``run(packed) -> residuals`` for one (7, h, w) float32 array, tiled with a halo."""

    def __init__(self, owner, backend: str = "onnx", device: str = "cpu", precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"gan-enhance.precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.backend = pick(backend)
        self.device = device
        self.precision = precision if self.backend == "torch" else "fp32"  # bf16 is a torch-path option
        if self.backend == "onnx":
            import onnxruntime

            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            self.session = weights.load(owner, ONNX_FILE, providers=providers)
        else:
            import torch

            from .model import Generator

            tensors = weights.load(owner, SAFETENSORS_FILE, framework="pt")
            net = Generator()
            net.load_state_dict(tensors)
            self.torch_device = torch.device(device if device.startswith("cuda") and torch.cuda.is_available() else "cpu")
            self.net = net.eval().to(self.torch_device)

    def _run_tile(self, x: np.ndarray) -> np.ndarray:
        if self.backend == "onnx":
            return self.session.run(None, {"x": x[None]})[0][0]
        import torch

        with torch.inference_mode(), torch.autocast(self.torch_device.type, torch.bfloat16, enabled=self.precision == "bf16"):
            return self.net(torch.from_numpy(x[None]).to(self.torch_device)).float().cpu().numpy()[0]

    def run(self, packed: np.ndarray) -> np.ndarray:
        return run_tiled(self._run_tile, packed, 12, TILE, HALO)
