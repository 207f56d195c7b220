"""Train the rectified-flow velocity network and export safetensors + ONNX (printing their sha256).

    python -m genpost.training_data /tmp/gan                       # (source, x265 decode) pairs, QP 27..42
    python -m genpost_rectified_flow.train --pairs /tmp/gan/pairs --out genpost_rectified_flow/weights

The flow carries ``x0 = decoded + sigma * eps`` to the source ``x1`` along straight lines. So that a sampler
may start part-way (at ``t0 > 0``, from ``x_t0 = decoded + (1 - t0) * sigma * eps``, which is what the
decoder can build without the source), every training sample draws a start time ``t0``, builds that start
state, and a time ``t`` on the straight line from it to the source:

    x_t = x_t0 + (t - t0) / (1 - t0) * (x1 - x_t0),      target v = (x1 - x_t0) / (1 - t0) = (x1 - x_t) / (1 - t)

With ``t0 = 0`` this is the plain rectified-flow interpolation. The loss is ``(1 - t)^2 * |v_pred - v|^2``
= the squared error of the one-step source estimate ``x_t + (1 - t) * v_pred`` (the plugin's RD distortion
is SSE), so one Euler step from any start is already a good regressor (the warm start the sampler relies on).

Needs the ``train`` extra (torch 2.13 CPU, safetensors, onnx). Reproducible for a given seed, steps and
thread count (``torch.set_num_threads``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from genpost import modeling, training_data
from genpost.learned import train
from genpost.training_data import random_patch

PATCH = 128  # luma patch side (64 at chroma resolution)
SIGMA_MAX = 0.04  # largest start noise, in units of the full sample range (about 10 codes at 8 bits)
T0_MAX = 0.75
T_SPAN = 0.75  # evaluated times: t0 + k (1 - t0) / N, k < N <= 4, so at most 3/4 of the way
P_ZERO = 0.84  # P(t0 = 0) = P(u = 0): 71 % of samples at t = 0, the one-step restoration the encoder picks


def batch(pairs, rng: np.random.Generator, size: int, p_zero: float = P_ZERO):
    """(inputs (N,14,h,w), targets (N,6,h,w), weights (N,) = (1-t)^2) for random patches and flow times."""
    xs, vs, ws = [], [], []
    c = PATCH // 2
    for _ in range(size):
        x1, dec = random_patch(pairs, rng, PATCH)  # source (6), decoded + QP plane (7)
        sigma = 0.0 if rng.random() < 0.3 else rng.uniform(0.0, SIGMA_MAX)
        t0 = 0.0 if rng.random() < p_zero else rng.uniform(0.0, T0_MAX)
        u = 0.0 if rng.random() < p_zero else rng.uniform(0.0, T_SPAN)
        t = t0 + (1 - t0) * u
        start = dec[:6] + np.float32((1 - t0) * sigma) * rng.standard_normal(dec[:6].shape, np.float32)
        v = (x1 - start) / np.float32(1 - t0)
        xt = start + np.float32(t - t0) * v
        xs.append(np.concatenate([xt, dec, np.full((1, c, c), t, np.float32)]))
        vs.append(v)
        ws.append((1 - t) ** 2)
    return np.stack(xs).astype(np.float32), np.stack(vs).astype(np.float32), np.asarray(ws, np.float32)


def main(argv=None) -> None:
    ap = train.arguments(__doc__, 3000)
    ap.add_argument("--p-zero", type=float, default=P_ZERO, help="probability that t0 = 0, and that u = 0")
    args = ap.parse_args(argv)

    import torch

    from .model import VelocityNet, macs_per_pixel

    rng, pairs = training_data.start(args.seed, args.threads, args.pairs)
    net = VelocityNet().to(memory_format=torch.channels_last)
    log = {"pairs": len(pairs), "params": sum(p.numel() for p in net.parameters()), "kmac_per_px_per_step": macs_per_pixel(net) / 1e3}
    print(json.dumps(log), flush=True)

    start = time.time()
    opt, sched = train.adam(net.parameters(), args.lr, args.steps)
    run = 0.0
    for step in range(args.steps):
        x, v, w = (torch.from_numpy(a) for a in batch(pairs, rng, args.batch, args.p_zero))
        pred = net(x.contiguous(memory_format=torch.channels_last))
        loss = (((pred - v) ** 2).mean((1, 2, 3)) * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run = 0.98 * run + 0.02 * loss.item() if step else loss.item()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step} loss {run:.7f} t {time.time() - start:.0f}s", flush=True)
    log["steps"], log["seconds"] = args.steps, round(time.time() - start)
    log.update(seed=args.seed, batch=args.batch, patch=PATCH, lr=args.lr, threads=args.threads, p_zero=args.p_zero,
               sigma_max=SIGMA_MAX, t0_max=T0_MAX, t_span=T_SPAN)  # fmt: skip
    export(net, args.out, log)


def export(net, out: Path, log: dict) -> None:
    print(json.dumps(modeling.export(net, out, "rectified_flow_v1", 14, log), indent=1))


if __name__ == "__main__":
    main()
