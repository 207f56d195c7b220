"""Train the residual-diffusion latent encoder and denoiser end to end on the corpus (resumable,
``genpost.learned.trainer``) and export safetensors + ONNX + training.json.

    python -m genpost.learned.corpus build
    python -m genpost_residual_diffusion.train --out runs/residual-diffusion --init-from runs/gan-enhance --hours 1
    python -m genpost_residual_diffusion.train --out runs/residual-diffusion --export genpost_residual_diffusion/weights

Per sample: the encoder maps (scaled residual, decode, QP) on the 1/8 luma grid to a 4-channel latent
``y``; quantisation with a random step ``s`` (log-uniform in STEP_RANGE) is modelled by additive uniform
noise ``y + s * u``; its rate is the bits of a factorized Laplace prior (one learned scale per channel)
over bins of width ``s``; with probability P_DROP the latent is withheld (zeros, flag 0: the default mode).
The denoiser sees the noisy residual ``x_t = cos(pi t/2) x0 + sin(pi t/2) eps`` (x0 = RS * residual), the
decode, QP, ``t`` and the upsampled latent, and predicts ``x0``; with probability P_MEAN it gets ``t = 1``
and ``x_t = 0`` (the deterministic one-step posterior-mean mode, the plugin's default).

Loss: ``(D + lambda * R) / D_decode`` per patch: the distortion relative to the decode's per plane (the
trunk's ``patches.relative_mse``, so every QP counts as in a BD-rate) and the latent's bits at
``LAMBDA_SCALE * lambda_HM(QP)`` (ramped in over RAMP steps: at the full lambda from the start the latent
collapses before it becomes useful) over the decode's SSE; the plugin's per-frame step choice then sets
the real trade-off.

``--init-from`` starts the denoiser from the shared restoration trunk (``genpost.learned.trunk``): its
mean mode without latent then restores exactly as the trunk does, and training teaches the latent and the
sampler what to add. Needs the ``train`` extra. Reproducible for a given seed, step count and threads.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from genpost.learned import corpus, modeling, patches, trainer, trunk
from genpost.learned.trainer import Trainer, seed_everything

from .layout import CELL, LATENT, RS, encoder_input, lagrangian8

PATCH = 128  # luma patch side (64 at chroma resolution, 16 latent cells)
STEP_RANGE = (0.5, 5.6)  # the plugin's STEPS span
P_DROP = 0.2
P_MEAN = 0.6
LAMBDA_SCALE = 0.125
RAMP = 1500
ENCODER_STEM, DENOISER_STEM = "latent_encoder_v1", "residual_denoiser_v1"


def noise(dec: np.ndarray, src: np.ndarray, rng: np.random.Generator) -> dict:
    """The step's draws beside the patches (a function of the generator, so of (seed, step)): encoder
    inputs, QPs, quantiser steps, times (-1: the mean mode), withheld latents, noise and dither."""
    n, _, c, _ = src.shape
    qps = dec[:, 6, 0, 0] * 15.0 + 27.0
    return {
        "enc": np.stack([encoder_input(s, d, q) for s, d, q in zip(src, dec, qps)]).astype(np.float32),
        "qp": qps.astype(np.float32),
        "step": np.exp(rng.uniform(*np.log(STEP_RANGE), n)).astype(np.float32),
        "t": np.where(rng.random(n) < P_MEAN, -1.0, rng.uniform(0.0, 1.0, n)).astype(np.float32),
        "drop": (rng.random(n) < P_DROP).astype(np.float32),
        "eps": rng.standard_normal(src.shape, np.float32),
        "u": rng.uniform(-0.5, 0.5, (n, LATENT, c // CELL, c // CELL)).astype(np.float32),
    }


def laplace_bits(torch, y, step, log_b):
    """Bits of ``y`` under a zero-mean Laplace (scale exp(log_b) per channel) over bins of width ``step``."""
    b = log_b.exp().view(1, -1, 1, 1)
    cdf = lambda v: 0.5 + 0.5 * torch.sign(v) * (1 - torch.exp(-v.abs() / b))  # noqa: E731
    p = cdf(y + step / 2) - cdf(y - step / 2)
    return -torch.log2(p.clamp_min(1e-9))


def joint(blocks: int):
    """Encoder, denoiser and the prior's log scales as one module (one optimiser, one EMA)."""
    import torch

    from .model import LatentEncoder, ResidualDenoiser

    class Joint(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc, self.den = LatentEncoder(), ResidualDenoiser(blocks=blocks)
            self.log_b = torch.nn.Parameter(torch.zeros(LATENT))

    return Joint()


def forward(torch, net, dec, src, d: dict):
    """(x0 prediction, x0 target, bits per patch) for a batch: the residual in diffusion units (x RS)."""
    t = {k: torch.from_numpy(v) for k, v in d.items()}
    n = src.shape[0]
    y = net.enc(t["enc"])
    step = t["step"].view(n, 1, 1, 1)
    keep = (1 - t["drop"]).view(n, 1, 1, 1)
    y_noisy = y + step * t["u"]
    bits = laplace_bits(torch, y_noisy, step, net.log_b).sum((1, 2, 3)) * keep.view(n)
    up = (y_noisy * keep).repeat_interleave(CELL, 2).repeat_interleave(CELL, 3)
    x0 = (src - dec[:, :6]) * RS
    mean_mode = (t["t"] < 0).view(n, 1, 1, 1).float()
    tt = t["t"].clamp_min(0).view(n, 1, 1, 1)
    xt = (torch.cos(math.pi * tt / 2) * x0 + torch.sin(math.pi * tt / 2) * t["eps"]) * (1 - mean_mode)
    tplane = (tt * (1 - mean_mode) + mean_mode).expand(-1, 1, *x0.shape[2:])
    x = torch.cat([xt, dec, tplane, up, torch.ones_like(tplane) * keep], 1)
    return net.den(x), x0, bits


def arguments(argv):
    ap = trainer.arguments(__doc__, steps=16_000, validate_every=2000, lr=2e-4)
    trunk.add_arguments(ap)  # --init-from, --blocks
    ap.add_argument("--lambda-scale", type=float, default=LAMBDA_SCALE)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = arguments(argv)
    import torch

    from .model import macs_per_pixel

    seed_everything(args.seed, args.threads)
    net = joint(args.blocks)
    extra = {"corpus_manifest_sha256": corpus.manifest_hash(), "batch": args.batch, "patch": PATCH, "lr": args.lr,
             "blocks": args.blocks, "step_range": STEP_RANGE, "p_drop": P_DROP, "p_mean": P_MEAN, "rs": RS,
             "lambda_scale": args.lambda_scale, "ramp": RAMP,
             "encoder_params": sum(p.numel() for p in net.enc.parameters()),
             "denoiser_params": sum(p.numel() for p in net.den.parameters()),
             "encoder_kmac_per_px": macs_per_pixel(net.enc, 2 * CELL) / 1e3,
             "denoiser_kmac_per_px_per_step": macs_per_pixel(net.den, 2) / 1e3}  # fmt: skip
    run = Trainer(args.out, {"rd": net}, {"rd": (args.lr, None)}, total_steps=args.steps, seed=args.seed,
                  threads=args.threads, ema="rd", checkpoint_s=60 * args.checkpoint_minutes, log_extra=extra)  # fmt: skip
    resumed = run.resume(strict=not args.export)
    if args.export:
        ema = run.ema_module(lambda: joint(run.log.get("blocks", args.blocks)))
        log = dict(run.summary(), prior_log_scale=[round(float(v), 4) for v in ema.log_b.detach()])
        log = modeling.export(ema.enc, args.export, ENCODER_STEM, ema.enc.body[0].in_channels, log)
        print(json.dumps(modeling.export(ema.den, args.export, DENOISER_STEM, ema.den.head.in_channels, log)["history"][-1:]))
        return 0
    if not resumed and args.init_from:
        trunk.start(run, net.den, args.init_from, out_scale=RS)
    cache = corpus.cache_dir(args.corpus)
    train_pairs, val_pairs = patches.load(cache, "train"), patches.load(cache, "val")
    vx, vs = patches.fixed_set(val_pairs, 96, PATCH)
    vd = noise(vx, vs, np.random.default_rng(12345))
    vd["t"][:] = -1.0  # validation: the one-step mean mode, with the latent at a middle step and without it
    vd["step"][:] = 2.0
    vd["u"][:] = 0.0
    print(f"{'resumed at step ' + str(run.step) if resumed else 'new run'}: {train_pairs.count} train pairs from "
          f"{len(train_pairs.sources)} sources, {val_pairs.count} val pairs from {len(val_pairs.sources)}", file=sys.stderr)  # fmt: skip

    def validate(r: Trainer) -> dict:
        m = r.ema_module(lambda: joint(args.blocks)).eval()
        out = {}
        for name, drop in (("default", 1.0), ("latent", 0.0)):
            vd["drop"][:] = drop
            with torch.no_grad():
                pred, _, bits = forward(torch, m, torch.from_numpy(vx), torch.from_numpy(vs), vd)
            restored = vx[:, :6] + pred.numpy() / RS
            out[f"val_gain_db_{name}"] = patches.plane_psnr_gain(vs, vx[:, :6], restored)
            if name == "latent":
                out["val_bpp_latent"] = round(float(bits.mean()) / PATCH**2, 5)
            else:
                out["val_mse"] = float(np.mean((restored - vs) ** 2))
        return out

    if not resumed:
        run.validate(validate)
    run.stop_on_signals()  # kill (SIGTERM) ends the run checkpointed
    while run.step < run.total_steps and run.within(None if args.hours is None else 3600 * args.hours):
        dec, src = patches.batch(train_pairs, run.seed, run.step, args.batch, PATCH)
        d = noise(dec, src, np.random.default_rng([run.seed, run.step, 1]))
        dec_t, src_t = torch.from_numpy(dec), torch.from_numpy(src)
        pred, x0, bits = forward(torch, net, dec_t, src_t, d)
        distortion = patches.relative_mse(pred / RS, x0 / RS, x0 / RS)
        decode_sse = (((src_t - dec_t[:, :6]) * 255.0) ** 2).sum((1, 2, 3))
        floor = patches.REL_FLOOR * 255.0**2 * float(np.prod(src.shape[1:]))
        lam = torch.from_numpy(np.asarray([lagrangian8(q) for q in d["qp"]], np.float32))
        ramp = args.lambda_scale * min(1.0, run.step / RAMP)
        rate = (ramp * lam * bits / decode_sse.clamp_min(floor)).mean()
        run.optimize("rd", distortion + rate)
        run.advance({"rel_mse": distortion.item(), "rate": rate.item(), "bpp": bits.mean().item() / PATCH**2},
                    validate, args.validate_every)  # fmt: skip
    log = run.finish()
    print(json.dumps({k: log[k] for k in ("step", "cpu_s", "wall_s")} | {"validation": log["validation"][-1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
