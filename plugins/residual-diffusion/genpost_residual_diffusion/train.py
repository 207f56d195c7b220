"""Train the residual-diffusion latent encoder and denoiser end to end and export safetensors + ONNX.

    python -m genpost.training_data /tmp/gan                       # (source, x265 decode) pairs, QP 27..42
    python -m genpost_residual_diffusion.train --pairs /tmp/gan/pairs --out genpost_residual_diffusion/weights

Per sample: the encoder maps (scaled residual, decode, QP) on the 1/8 luma grid to a 4-channel latent
``y``; quantisation with a random step ``s`` (log-uniform in STEP_RANGE) is modelled by additive uniform
noise ``y + s * u``; its rate is the bits of a factorized Laplace prior (one learned scale per channel)
over bins of width ``s``; with probability P_DROP the latent is withheld (zeros, flag 0: the default mode).
The denoiser sees the noisy residual ``x_t = cos(pi t/2) x0 + sin(pi t/2) eps`` (x0 = RS * residual), the
decode, QP, ``t`` and the upsampled latent, and predicts ``x0``; with probability P_MEAN it gets ``t = 1``
and ``x_t = 0`` (the deterministic one-step posterior-mean mode, the plugin's default).
Loss per luma pixel: ``SSE (8-bit, Y+U+V) + LAMBDA_SCALE * lambda_HM(QP) * bits`` (ramped in over RAMP steps) --
the plugin's own RD cost at a lower lambda; the plugin's per-frame step choice sets the real trade-off.

Needs the ``train`` extra (torch 2.13 CPU, safetensors, onnx). Reproducible for a given seed, steps and
thread count (``torch.set_num_threads``).
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from genpost import modeling, training_data
from genpost.learned import train
from genpost.training_data import random_patch

from .layout import CELL, RS, encoder_input, lagrangian8

PATCH = 128  # luma patch side (64 at chroma resolution, 16 latent cells)
STEP_RANGE = (0.5, 5.6)  # the plugin's STEPS span
P_DROP = 0.2
P_MEAN = 0.6
# the rate is weighted by LAMBDA_SCALE * lambda_HM(QP), ramped up from 0 over RAMP steps: at the full lambda from
# the start the latent collapses to zero before it has become useful (the prior's bits dominate the loss);
# the plugin's per-frame step choice then moves the rate to the true lambda
LAMBDA_SCALE = 0.125
RAMP = 1500


def batch(pairs, rng: np.random.Generator, size: int) -> dict:
    src, dec, enc, qps, steps, t, drop, eps = [], [], [], [], [], [], [], []
    for _ in range(size):
        s, d = random_patch(pairs, rng, PATCH)  # source (6), decoded + QP plane (7)
        qp = float(d[6, 0, 0]) * 15.0 + 27.0
        src.append(s)
        dec.append(d)
        enc.append(encoder_input(s, d, qp))
        qps.append(qp)
        steps.append(math.exp(rng.uniform(*np.log(STEP_RANGE))))
        t.append(-1.0 if rng.random() < P_MEAN else rng.uniform(0.0, 1.0))  # -1: the one-step mean mode
        drop.append(rng.random() < P_DROP)
        eps.append(rng.standard_normal(s.shape, np.float32))
    f = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return {"src": f(src), "dec": f(dec), "enc": f(enc), "qp": f(qps), "step": f(steps), "t": f(t),
            "drop": f(drop), "eps": f(eps), "u": rng.uniform(-0.5, 0.5, (size, 4, PATCH // 2 // CELL, PATCH // 2 // CELL)).astype(np.float32)}  # fmt: skip


def laplace_bits(torch, y, step, log_b):
    """Bits of ``y`` under a zero-mean Laplace (scale exp(log_b) per channel) over bins of width ``step``."""
    b = log_b.exp().view(1, -1, 1, 1)
    cdf = lambda v: 0.5 + 0.5 * torch.sign(v) * (1 - torch.exp(-v.abs() / b))  # noqa: E731
    p = cdf(y + step / 2) - cdf(y - step / 2)
    return -torch.log2(p.clamp_min(1e-9))


def forward(torch, enc, den, log_b, b: dict):
    """(SSE in 8-bit units per patch, bits per patch) for a batch."""
    t = {k: torch.from_numpy(v) for k, v in b.items()}
    n = t["src"].shape[0]
    y = enc(t["enc"])
    step = t["step"].view(n, 1, 1, 1)
    keep = (1 - t["drop"]).view(n, 1, 1, 1)
    y_hat = (y + step * t["u"]) * keep
    bits = (laplace_bits(torch, y + step * t["u"], step, log_b).sum((1, 2, 3))) * keep.view(n)
    up = y_hat.repeat_interleave(CELL, 2).repeat_interleave(CELL, 3)
    x0 = (t["src"] - t["dec"][:, :6]) * RS
    mean_mode = (t["t"] < 0).view(n, 1, 1, 1).float()
    tt = t["t"].clamp_min(0).view(n, 1, 1, 1)
    a, s = torch.cos(math.pi * tt / 2), torch.sin(math.pi * tt / 2)
    xt = (a * x0 + s * t["eps"]) * (1 - mean_mode)
    tplane = (tt * (1 - mean_mode) + mean_mode).expand(-1, 1, *x0.shape[2:])
    ones = torch.ones_like(tplane)
    x = torch.cat([xt, t["dec"], tplane, up, ones * keep], 1)
    pred = den(x)
    sse = (((pred - x0) / RS) ** 2).sum((1, 2, 3)) * 255.0**2
    return sse, bits


def main(argv=None) -> None:
    ap = train.arguments(__doc__, 3600)
    ap.add_argument("--lambda-scale", type=float, default=LAMBDA_SCALE)
    args = ap.parse_args(argv)

    import torch

    from .model import LatentEncoder, ResidualDenoiser, macs_per_pixel

    rng, pairs = training_data.start(args.seed, args.threads, args.pairs)
    enc, den = LatentEncoder(), ResidualDenoiser()
    log_b = torch.nn.Parameter(torch.zeros(4))
    params = [*enc.parameters(), *den.parameters(), log_b]
    log = {"pairs": len(pairs),
           "encoder_params": sum(p.numel() for p in enc.parameters()), "denoiser_params": sum(p.numel() for p in den.parameters()),
           "encoder_kmac_per_px": macs_per_pixel(enc, 2 * CELL) / 1e3, "denoiser_kmac_per_px_per_step": macs_per_pixel(den, 2) / 1e3}  # fmt: skip
    print(json.dumps(log), flush=True)
    start = time.time()
    opt, sched = train.adam(params, args.lr, args.steps)
    px = float(PATCH * PATCH)
    run = {}
    for step in range(args.steps):
        b = batch(pairs, rng, args.batch)
        sse, bits = forward(torch, enc, den, log_b, b)
        ramp = args.lambda_scale * min(1.0, step / RAMP)
        lam = torch.from_numpy(np.asarray([ramp * lagrangian8(q) for q in b["qp"]], np.float32))
        loss = ((sse + lam * bits) / px).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        base = float(((b["src"] - b["dec"][:, :6]) ** 2).sum((1, 2, 3)).mean() * 255.0**2 / px)
        for k, v in (("J", loss.item()), ("mse", sse.mean().item() / px), ("bpp", bits.mean().item() / px), ("base", base)):
            run[k] = 0.98 * run.get(k, v) + 0.02 * v
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step} " + " ".join(f"{k} {v:.4f}" for k, v in run.items()) + f" t {time.time() - start:.0f}s", flush=True)
    log["steps"], log["seconds"] = args.steps, round(time.time() - start)
    log.update(seed=args.seed, batch=args.batch, patch=PATCH, lr=args.lr, threads=args.threads, step_range=STEP_RANGE,
               p_drop=P_DROP, p_mean=P_MEAN, rs=RS, lambda_scale=args.lambda_scale, ramp=RAMP)  # fmt: skip
    log["prior_log_scale"] = [round(float(v), 4) for v in log_b.detach()]
    log = modeling.export(enc, args.out, "latent_encoder_v1", enc.body[0].in_channels, log)
    print(json.dumps(modeling.export(den, args.out, "residual_denoiser_v1", den.head.in_channels, log), indent=1))


if __name__ == "__main__":
    main()
