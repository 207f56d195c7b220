"""What every learned post-processor needs between 4:2:0 planes and a network (numpy only, no torch):
the one place where samples become model tensors and back, and tiled inference with a halo.

The layout keeps 4:2:0 and any bit depth: luma is split into its four 2x2 phases so that all six
planes share the chroma grid, and samples are divided by ``2**bit_depth - 1`` (no RGB, no 8-bit
rounding). Training and inference both call ``pack``, so they see exactly the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

QP_REF, QP_SPAN = 27.0, 15.0  # a QP plane holds (qp - 27) / 15: 0 at QP 27, 1 at QP 42
PLANES = 6  # packed channels without conditioning planes


def qp_value(qp: float) -> float:
    return (float(qp) - QP_REF) / QP_SPAN


def pack(y: np.ndarray, u: np.ndarray, v: np.ndarray, max_value: int, qp: float | None = None) -> np.ndarray:
    """(6, h, w) float32, or (7, h, w) with a constant QP plane: luma's four 2x2 phases, U, V (each
    / max_value), where (h, w) is the chroma size; luma of odd size is edge-padded to twice that."""
    h, w = u.shape
    if y.shape != (2 * h, 2 * w):
        y = np.pad(y, ((0, 2 * h - y.shape[0]), (0, 2 * w - y.shape[1])), mode="edge")
    out = np.empty((PLANES + (qp is not None), h, w), np.float32)
    scale = np.float32(1.0 / max_value)
    out[0] = y[0::2, 0::2] * scale
    out[1] = y[0::2, 1::2] * scale
    out[2] = y[1::2, 0::2] * scale
    out[3] = y[1::2, 1::2] * scale
    out[4] = u * scale
    out[5] = v * scale
    if qp is not None:
        out[6] = qp_value(qp)
    return out


def unpack(x: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(6, h, w) -> luma (height, width), U, V (h, w) in the same (float) scale; inverse of ``pack``."""
    h, w = x.shape[1:]
    y = np.empty((2 * h, 2 * w), x.dtype)
    y[0::2, 0::2], y[0::2, 1::2], y[1::2, 0::2], y[1::2, 1::2] = x[0], x[1], x[2], x[3]
    return y[:height, :width], x[4], x[5]


def to_samples(plane: np.ndarray, max_value: int, dtype) -> np.ndarray:
    """A float plane in 0..1 back to integer samples (rounded to nearest, clipped to the bit depth)."""
    return np.clip(np.rint(plane * max_value), 0, max_value).astype(dtype)


def run_tiled(
    run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, out_channels: int, tile: int, halo: int,
    multiple: int = 1,
) -> np.ndarray:
    """``run`` on (C, h, w) in ``tile``-sized pieces, each with ``halo`` samples of context on every side
    (clipped at the frame edge), keeping only each piece's centre. With ``halo`` at least the network's
    receptive radius the result equals running on the whole frame, while memory stays bounded.

    A network with strided layers needs sizes that are a ``multiple`` of its stride: the frame is
    edge-padded to one and the result cropped back; ``tile`` and ``halo`` are multiples too, so every
    piece starts on the stride grid and joins exactly."""
    _, h, w = x.shape
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        padded = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="edge")
        return run_tiled(run, padded, out_channels, tile, halo, multiple)[:, :h, :w]
    if h <= tile + 2 * halo and w <= tile + 2 * halo:
        return run(np.ascontiguousarray(x))
    out = np.empty((out_channels, h, w), np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(y0 - halo, 0), max(x0 - halo, 0)
            yb, xb = min(y1 + halo, h), min(x1 + halo, w)
            r = run(np.ascontiguousarray(x[:, ya:yb, xa:xb]))
            out[:, y0:y1, x0:x1] = r[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
    return out


BACKENDS = ("onnx", "torch")
PRECISIONS = ("fp32", "bf16")  # bf16: torch autocast (CUDA, or CPUs where it measures faster)


def runtime_installed(backend: str) -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime" if backend == "onnx" else "torch") is not None


def pick_backend(requested: str, who: str) -> str:
    """The requested backend if its runtime is installed, else the other one (a clean fallback)."""
    if requested not in BACKENDS:
        raise ValueError(f"{who}.backend must be one of {', '.join(BACKENDS)}, not {requested!r}")
    for backend in (requested, *(b for b in BACKENDS if b != requested)):
        if runtime_installed(backend):
            return backend
    raise ImportError(f"{who} needs onnxruntime (pip install onnxruntime) or torch")


class Network:
    """A plugin's network, run on tiles with a halo: its ONNX export on onnxruntime (the CUDA provider
    when ``device`` is cuda and onnxruntime-gpu is there), or its safetensors weights in the torch module
    ``make_module()`` returns. Weights load only through ``genpost.learned.weights`` (sha256 checked against the
    plugin's ``WeightsFile`` declarations); onnxruntime and torch are imported here, on first use."""

    def __init__(
        self, owner, who: str, *, onnx_file: str, safetensors_file: str, make_module, out_channels: int,
        halo: int, tile: int = 256, backend: str = "onnx", device: str = "cpu", precision: str = "fp32",
        multiple: int = 1, state: dict[str, np.ndarray] | None = None,
    ):  # fmt: skip
        from . import weights

        self._rebuild = dict(onnx_file=onnx_file, safetensors_file=safetensors_file, make_module=make_module,
                             out_channels=out_channels, halo=halo, tile=tile, backend=backend, device=device,
                             precision=precision, multiple=multiple)  # fmt: skip
        self._owner, self._who = owner, who
        self.state = state  # None: the shipped weights; else the weights this network runs (an adapted copy)

        if precision not in PRECISIONS:
            raise ValueError(f"{who}.precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.backend = pick_backend(backend, who)
        if tile % multiple or halo % multiple:
            raise ValueError(f"{who}: tile and halo must be multiples of {multiple}")
        self.device, self.out_channels, self.halo, self.tile = device, out_channels, halo, tile
        self.multiple = multiple
        self.precision = precision if self.backend == "torch" else "fp32"  # bf16 is a torch-path option
        if self.backend == "onnx":
            import onnxruntime

            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            replace = None
            if state is not None:  # the adapted values written over the shipped ones in the verified model
                shipped = self.shipped_state()
                replace = [(shipped[k], state[k]) for k in shipped]
            self.session = weights.load(owner, onnx_file, providers=providers, replace=replace)
        else:
            import torch

            net = make_module()
            if state is None:
                net.load_state_dict(weights.load(owner, safetensors_file, framework="pt"))
            else:
                net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
            use_cuda = device.startswith("cuda") and torch.cuda.is_available()
            self.torch_device = torch.device(device if use_cuda else "cpu")
            self.net = net.eval().to(self.torch_device)

    def shipped_state(self) -> dict[str, np.ndarray]:
        """The shipped weights as float32 numpy arrays (sha256 checked), what content updates apply to."""
        from . import weights

        owner, safetensors_file = self._owner, self._rebuild["safetensors_file"]
        return {k: np.asarray(v, np.float32) for k, v in weights.load(owner, safetensors_file).items()}

    def with_state(self, state: dict[str, np.ndarray] | None) -> "Network":
        """The same network (backend, device, tiling) running ``state`` instead: for ONNX the new values are
        written over the shipped ones in the verified model bytes (``weights.patch_tensors``; a new session,
        ~20 ms), for torch the module loads them."""
        return Network(self._owner, self._who, **self._rebuild, state=state)

    def run_tile(self, x: np.ndarray) -> np.ndarray:
        """The network on one (C, h, w) float32 tile, untiled (what ``__call__`` runs per tile)."""
        if self.backend == "onnx":
            return self.session.run(None, {self.session.get_inputs()[0].name: x[None]})[0][0]
        import torch

        bf16 = self.precision == "bf16"
        with torch.inference_mode(), torch.autocast(self.torch_device.type, torch.bfloat16, enabled=bf16):
            return self.net(torch.from_numpy(x[None]).to(self.torch_device)).float().cpu().numpy()[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The network on one (C, h, w) float32 array, tiled."""
        return run_tiled(self.run_tile, x, self.out_channels, self.tile, self.halo, self.multiple)


def export(net, out_dir, stem: str, in_channels: int, log: dict) -> dict:
    """Write a trained torch module as ``STEM.safetensors`` and ``STEM.onnx`` (input ``x``, any batch and
    size) and ``training.json`` = ``log`` plus both files' sha256, which the plugin then lists in its
    ``weights/SHA256SUMS`` (``genpost.learned.plugin.shipped_weights``). Training-time only: imports torch, safetensors and onnx."""
    import hashlib
    import json
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = net.eval().float()
    tensors, onnx_path = out / f"{stem}.safetensors", out / f"{stem}.onnx"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tensors))
    axes = {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(net, (torch.zeros(1, in_channels, 72, 88),), str(onnx_path), input_names=["x"],
                      output_names=["y"], opset_version=17, dynamic_axes={"x": axes, "y": axes}, dynamo=False)  # fmt: skip
    log = dict(log)
    for path in (tensors, onnx_path):
        log[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    (out / "training.json").write_text(json.dumps(log, indent=1) + "\n")
    return log


@dataclass(frozen=True)
class NetworkSpec:
    """One of a plugin's networks, declared once in its ``engine`` module: who runs it (for messages),
    its shipped ``(onnx, safetensors)`` files, its torch module as ``"package.model:Class"`` (imported only
    when the torch backend or training builds it), its output channels and its tiling. Calling the spec
    builds the ``Network``: ``spec(owner, backend, device, precision)``."""

    who: str
    files: tuple[str, str]
    module: str
    out_channels: int
    halo: int
    tile: int = 256
    multiple: int = 1

    def make_module(self):
        """A fresh torch module of the network's class (untrained)."""
        import importlib

        path, _, name = self.module.partition(":")
        return getattr(importlib.import_module(path), name)()

    def pick(self, requested: str) -> str:
        """``pick_backend`` for this network's plugin."""
        return pick_backend(requested, self.who)

    def __call__(self, owner, backend: str = "onnx", device: str = "cpu", precision: str = "fp32") -> Network:
        onnx_file, safetensors_file = self.files
        return Network(owner, self.who, onnx_file=onnx_file, safetensors_file=safetensors_file, make_module=self.make_module,
                       out_channels=self.out_channels, halo=self.halo, tile=self.tile, backend=backend, device=device,
                       precision=precision, multiple=self.multiple)  # fmt: skip
