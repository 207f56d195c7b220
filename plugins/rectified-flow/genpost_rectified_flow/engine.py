"""The velocity network as a ``genpost.learned.modeling.Network`` (onnxruntime by default, or torch, on overlapping
tiles, weights only through ``genpost.learned.weights``) and the Euler sampler."""

from __future__ import annotations

import numpy as np

from genpost.learned.modeling import Network, NetworkSpec

FILES = ("rectified_flow_v1.onnx", "rectified_flow_v1.safetensors")
HALO = 8  # > the network's receptive radius (6 convs of 3x3 at chroma resolution): tiles join exactly
TILE = 256  # tile side at chroma resolution (512 luma samples)

# ``Engine(owner, backend="onnx", device="cpu")``: ``engine(inputs (14, h, w)) -> velocity (6, h, w)``
Engine = NetworkSpec("rectified-flow", FILES, f"{__package__}.model:VelocityNet", 6, HALO, TILE)
pick, make_velocity_net = Engine.pick, Engine.make_module


def sample(engine: Network, decoded: np.ndarray, steps: int, t0: float, sigma: float, eps: np.ndarray | None) -> np.ndarray:
    """Euler integration of the flow from ``t0`` to 1: ``decoded`` is the packed (7, h, w) decode + QP plane;
    the start state is ``decoded + (1 - t0) * sigma * eps``; returns the (6, h, w) end state."""
    x = decoded[:6].copy()
    if sigma and eps is not None:
        x += np.float32((1.0 - t0) * sigma) * eps
    dt = (1.0 - t0) / steps
    tplane = np.empty((1, *x.shape[1:]), np.float32)
    for k in range(steps):
        tplane.fill(t0 + k * dt)
        x += np.float32(dt) * engine(np.concatenate([x, decoded, tplane]))
    return x
