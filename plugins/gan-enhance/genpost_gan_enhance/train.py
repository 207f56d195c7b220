"""Train the gan-enhance generator: MSE first (both heads), then a short adversarial fine-tune of the
perception head against a patch discriminator; export safetensors + ONNX and print their sha256.

    python -m genpost.training_data gan-data                      # pairs coded with genpost (x265, QP 27..42)
    python -m genpost_gan_enhance.train --pairs gan-data/pairs --out genpost_gan_enhance/weights

Needs the ``train`` extra (torch 2.13 CPU, safetensors, onnx, Pillow). Reproducible for a given seed,
steps and thread count (``torch.set_num_threads``).
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


def batch(pairs, rng: np.random.Generator, size: int):
    """(inputs (N, 7, c, c): decode + QP plane, targets (N, 6, c, c): source - decode) of random patches."""
    xs, ts = [], []
    for _ in range(size):
        src, dec = random_patch(pairs, rng, PATCH)
        xs.append(dec)
        ts.append(src - dec[:6])
    return np.stack(xs), np.stack(ts)


def main(argv=None) -> None:
    ap = train.arguments(__doc__, 5000, lr=None, steps_help="MSE steps")
    ap.add_argument("--gan-steps", type=int, default=1000, help="adversarial fine-tune steps")
    ap.add_argument("--adv-weight", type=float, default=0.005)
    args = ap.parse_args(argv)

    import torch
    from torch.nn import functional as F

    from .model import Generator, PatchDiscriminator, macs_per_pixel

    rng, pairs = training_data.start(args.seed, args.threads, args.pairs)
    g = Generator().to(memory_format=torch.channels_last)  # fp32 channels_last: bf16 measured slower here
    d = PatchDiscriminator().to(memory_format=torch.channels_last)
    log = {"pairs": len(pairs), "params": sum(p.numel() for p in g.parameters()), "kmac_per_px": macs_per_pixel(g) / 1e3}
    print(json.dumps(log), flush=True)

    def step_l1(opt, x, t, adv=None):
        r = g(x.contiguous(memory_format=torch.channels_last))
        loss_d = F.mse_loss(r[:, :6], t)  # distortion head: MSE, the plugin's RD distortion is SSE
        loss_p = F.mse_loss(r[:, 6:], t) if adv is None else F.l1_loss(r[:, 6:], t)
        loss = loss_d + loss_p
        if adv is not None:
            fake = x[:, :6] + r[:, 6:]
            loss = loss + args.adv_weight * F.softplus(-adv(fake)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss_d.item(), r

    start = time.time()
    opt, sched = train.adam(g.parameters(), 1e-3, args.steps)
    run = 0.0
    for step in range(args.steps):
        x, t = (torch.from_numpy(a) for a in batch(pairs, rng, args.batch))
        loss, _ = step_l1(opt, x, t)
        sched.step()
        run = 0.98 * run + 0.02 * loss if step else loss
        if step % 100 == 0 or step == args.steps - 1:
            print(f"mse step {step} loss {run:.7f} t {time.time() - start:.0f}s", flush=True)
    log["mse_steps"], log["mse_seconds"] = args.steps, round(time.time() - start)

    # adversarial fine-tune of the perception head only: the trunk and the distortion head stay exactly
    # as trained, so beta = 0 is the MSE model whatever the GAN does
    start = time.time()
    for p in list(g.head.parameters()) + list(g.body.parameters()):
        p.requires_grad_(False)
    g.tail.weight.register_hook(lambda grad: torch.cat([torch.zeros_like(grad[:6]), grad[6:]]))
    g.tail.bias.register_hook(lambda grad: torch.cat([torch.zeros_like(grad[:6]), grad[6:]]))
    opt_g = torch.optim.Adam(g.tail.parameters(), 1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.9))
    for step in range(args.gan_steps):
        x, t = (torch.from_numpy(a) for a in batch(pairs, rng, args.batch))
        _, r = step_l1(opt_g, x, t, adv=d)
        real, fake = x[:, :6] + t, (x[:, :6] + r[:, 6:]).detach()
        real, fake = real.contiguous(memory_format=torch.channels_last), fake.contiguous(memory_format=torch.channels_last)
        loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        if step % 100 == 0 or step == args.gan_steps - 1:
            print(f"gan step {step} d {loss_d.item():.3f} t {time.time() - start:.0f}s", flush=True)
    log["gan_steps"], log["gan_seconds"] = args.gan_steps, round(time.time() - start)
    log.update(seed=args.seed, batch=args.batch, patch=PATCH, adv_weight=args.adv_weight, threads=args.threads)
    export(g, args.out, log)


def export(net, out: Path, log: dict) -> None:
    print(json.dumps(modeling.export(net, out, "gan_enhance_v1", 7, log), indent=1))


if __name__ == "__main__":
    main()
