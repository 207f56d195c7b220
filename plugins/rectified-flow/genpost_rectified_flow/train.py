"""Train the rectified-flow velocity network on the corpus (resumable, ``genpost.learned.trainer``) and
export safetensors + ONNX + training.json.

    python -m genpost.learned.corpus build
    python -m genpost_rectified_flow.train --out runs/flow --init-from runs/gan --hours 1
    python -m genpost_rectified_flow.train --out runs/flow --export genpost_rectified_flow/weights

The flow carries ``x0 = decoded + sigma * eps`` to the source ``x1`` along straight lines. So that a sampler
may start part-way (at ``t0 > 0``, from ``x_t0 = decoded + (1 - t0) * sigma * eps``, which is what the
decoder can build without the source), every training sample draws a start time ``t0``, builds that start
state, and a time ``t`` on the straight line from it to the source:

    x_t = x_t0 + (t - t0) / (1 - t0) * (x1 - x_t0),      target v = (x1 - x_t0) / (1 - t0) = (x1 - x_t) / (1 - t)

With ``t0 = 0`` this is the plain rectified-flow interpolation. The loss is ``(1 - t)^2 * |v_pred - v|^2``
= the squared error of the one-step source estimate ``x_t + (1 - t) * v_pred`` (the plugin's RD distortion
is SSE), so one Euler step from any start is already a regressor (the warm start the sampler relies on);
like the trunk's, it is taken relative to the decode's error per patch and plane
(``genpost.learned.patches.relative_mse``), so every QP counts as in a BD-rate.

``--init-from`` starts from the shared restoration trunk (a gan-enhance run folder or its exported
safetensors; ``genpost.learned.trunk``): at t = 0 without noise the untrained flow already restores as the
trunk does away from the frame edge, when both have the same number of blocks (``--blocks 5``, the
trunk's; tests/test_training.py checks it).
Needs the ``train`` extra. Reproducible for a given seed, step count and thread count.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from genpost.learned import corpus, modeling, patches, trainer, trunk
from genpost.learned.trainer import Trainer, seed_everything

PATCH = 128  # luma patch side (64 at chroma resolution)
SIGMA_MAX = 0.04  # largest start noise, in units of the full sample range (about 10 codes at 8 bits)
T0_MAX = 0.75
T_SPAN = 0.75  # evaluated times: t0 + k (1 - t0) / N, k < N <= 4, so at most 3/4 of the way
P_ZERO = 0.84  # P(t0 = 0) = P(u = 0): 71 % of samples at t = 0, the one-step restoration the encoder picks
STEM = "rectified_flow_v1"


def flow_batch(dec: np.ndarray, x1: np.ndarray, rng: np.random.Generator, p_zero: float = P_ZERO):
    """(inputs (N,14,h,w), targets (N,6,h,w), weights (N,) = (1-t)^2) from packed decodes and sources."""
    n, _, h, w = dec.shape
    xs, vs, ws = [], [], []
    for i in range(n):
        sigma = 0.0 if rng.random() < 0.3 else rng.uniform(0.0, SIGMA_MAX)
        t0 = 0.0 if rng.random() < p_zero else rng.uniform(0.0, T0_MAX)
        u = 0.0 if rng.random() < p_zero else rng.uniform(0.0, T_SPAN)
        t = t0 + (1 - t0) * u
        start = dec[i, :6] + np.float32((1 - t0) * sigma) * rng.standard_normal((6, h, w), np.float32)
        v = (x1[i] - start) / np.float32(1 - t0)
        xt = start + np.float32(t - t0) * v
        xs.append(np.concatenate([xt, dec[i], np.full((1, h, w), t, np.float32)]))
        vs.append(v)
        ws.append((1 - t) ** 2)
    return np.stack(xs).astype(np.float32), np.stack(vs).astype(np.float32), np.asarray(ws, np.float32)


def arguments(argv):
    ap = trainer.arguments(__doc__, steps=20_000, validate_every=2500)
    trunk.add_arguments(ap)  # --init-from, --blocks
    ap.add_argument("--p-zero", type=float, default=P_ZERO)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = arguments(argv)
    import torch

    from .model import VelocityNet, macs_per_pixel

    seed_everything(args.seed, args.threads)
    def make():
        return VelocityNet(blocks=args.blocks)

    net = make().to(memory_format=torch.channels_last)
    extra = {"corpus_manifest_sha256": corpus.manifest_hash(), "batch": args.batch, "patch": PATCH, "lr": args.lr, "blocks": args.blocks,
             "p_zero": args.p_zero, "sigma_max": SIGMA_MAX, "t0_max": T0_MAX, "t_span": T_SPAN,
             "params": sum(p.numel() for p in net.parameters()), "kmac_per_px_per_step": macs_per_pixel(net) / 1e3}  # fmt: skip
    run = Trainer(args.out, {"v": net}, {"v": (args.lr, None)}, total_steps=args.steps, seed=args.seed,
                  threads=args.threads, ema="v", checkpoint_s=60 * args.checkpoint_minutes, log_extra=extra)  # fmt: skip
    resumed = run.resume(strict=not args.export)
    if args.export:
        print(json.dumps(modeling.export(run.ema_module(make), args.export, STEM, 14, run.summary())["history"][-1:]))
        return 0
    if not resumed and args.init_from:
        trunk.start(run, net, args.init_from)
    cache = corpus.cache_dir(args.corpus)
    train_pairs, val_pairs = patches.load(cache, "train"), patches.load(cache, "val")
    vx, vs = patches.fixed_set(val_pairs, 96, PATCH)
    vin = np.concatenate([vx[:, :6], vx, np.zeros((len(vx), 1, *vx.shape[2:]), np.float32)], 1)  # t = 0, no noise

    def validate(r: Trainer) -> dict:
        m = r.ema_module(make).eval()
        with torch.no_grad():
            out = vx[:, :6] + m(torch.from_numpy(vin)).numpy()  # one Euler step from t = 0
        return {"val_mse": float(np.mean((out - vs) ** 2)), "val_gain_db": patches.plane_psnr_gain(vs, vx[:, :6], out)}

    if not resumed:
        run.validate(validate)
    run.stop_on_signals()  # kill (SIGTERM) ends the run checkpointed
    while run.step < run.total_steps and run.within(None if args.hours is None else 3600 * args.hours):
        dec, src = patches.batch(train_pairs, run.seed, run.step, args.batch, PATCH)
        x, v, _ = (torch.from_numpy(a) for a in flow_batch(dec, src, np.random.default_rng([run.seed, run.step, 1]), args.p_zero))
        pred = net(x.contiguous(memory_format=torch.channels_last))
        t = x[:, 13:14, :1, :1]  # the time plane
        x1, x1_hat = x[:, :6] + (1 - t) * v, x[:, :6] + (1 - t) * pred  # the source and its one-step estimate
        loss = patches.relative_mse(x1_hat, x1, x1 - torch.from_numpy(dec[:, :6]))
        run.optimize("v", loss)
        run.advance({"loss": loss.item()}, validate, args.validate_every)
    log = run.finish()
    print(json.dumps({k: log[k] for k in ("step", "cpu_s", "wall_s")} | {"validation": log["validation"][-1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
