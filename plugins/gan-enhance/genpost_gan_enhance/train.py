"""Train the gan-enhance generator on the corpus: relative MSE on both heads, then an adversarial phase for
the perception head only; resumable, with a time budget per session; export safetensors + ONNX + training.json.

    python -m genpost.learned.corpus build                        # the corpus (outside the repo)
    python -m genpost_gan_enhance.train --out runs/gan --hours 2  # run (again) until done; resumes itself
    python -m genpost_gan_enhance.train --out runs/gan --export genpost_gan_enhance/weights
    # a wider/deeper "quality" generator that starts exactly where the trunk run ended (trunk.widen):
    python -m genpost_gan_enhance.train --out runs/gan-quality --channels 48 --blocks 10 --init-from runs/gan

Reproducible for a given seed, step count and thread count: a run killed and resumed gives the same
weights as one that never stopped (``genpost.learned.trainer``). Needs the ``train`` extra.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from genpost.learned import corpus, modeling, patches, trainer, trunk
from genpost.learned.trainer import Trainer, seed_everything

PATCH = 128  # luma patch side (64 at chroma resolution)
STEM = "gan_enhance_v1"


def arguments(argv):
    ap = trainer.arguments(__doc__, steps=200_000, validate_every=5000)
    ap.add_argument("--gan-fraction", type=float, default=0.05, help="last fraction of steps: adversarial phase")
    ap.add_argument("--adv-weight", type=float, default=0.005)
    ap.add_argument("--tail-lr", type=float, default=1e-4, help="adversarial phase: the perception head's peak rate")
    ap.add_argument("--texture-weight", type=float, default=0.0,
                    help="adversarial phase: weight of the perception head's texture loss (patches.texture_loss)")
    ap.add_argument("--channels", type=int, default=32, help="the generator's width (the shipped trunk: 32)")
    ap.add_argument("--stem", default=STEM, help="exported file names (a larger variant ships beside the default)")
    trunk.add_arguments(ap)  # --init-from (a trained generator to widen), --blocks
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = arguments(argv)
    import torch
    from torch.nn import functional as F

    from .model import Generator, PatchDiscriminator, macs_per_pixel

    cache = corpus.cache_dir(args.corpus)
    seed_everything(args.seed, args.threads)

    def make() -> Generator:
        return Generator(args.channels, args.blocks)

    g = make().to(memory_format=torch.channels_last)
    d = PatchDiscriminator().to(memory_format=torch.channels_last)
    tail = list(g.tail.parameters())
    gan_start = int(args.steps * (1 - args.gan_fraction))
    run = Trainer(
        args.out, {"g": g, "d": d},
        {"g": (args.lr, None), "tail": (args.tail_lr, tail, (0.5, 0.9)), "d": (2e-4, None, (0.5, 0.9))},
        total_steps=args.steps, seed=args.seed, threads=args.threads, ema="g",
        checkpoint_s=60 * args.checkpoint_minutes,
        log_extra={"corpus_manifest_sha256": corpus.manifest_hash(), "batch": args.batch, "patch": PATCH,
                   "lr": args.lr, "adv_weight": args.adv_weight, "gan_start": gan_start, "texture_weight": args.texture_weight,
                   "channels": args.channels, "blocks": args.blocks,
                   "params": sum(p.numel() for p in g.parameters()), "kmac_per_px": macs_per_pixel(g) / 1e3},
    )  # fmt: skip
    resumed = run.resume(strict=not args.export)
    if args.export:
        log = run.summary()  # exporting never writes the run's checkpoint (a run may be going on beside it)
        net = run.ema_module(make)
        print(json.dumps(modeling.export(net, args.export, args.stem, 7, log)["history"][-1:], indent=1))
        return 0
    train_pairs, val_pairs = patches.load(cache, "train"), patches.load(cache, "val")
    vx, vs = patches.fixed_set(val_pairs, 96, PATCH)
    print(f"{'resumed at step ' + str(run.step) if resumed else 'new run'}: {train_pairs.count} train pairs from "
          f"{len(train_pairs.sources)} sources, {val_pairs.count} val pairs from {len(val_pairs.sources)}", file=sys.stderr)  # fmt: skip

    def validate(r: Trainer) -> dict:
        net = r.ema_module(make).eval()
        with torch.no_grad():
            res = net(torch.from_numpy(vx)).numpy()
        out = vx[:, :6] + res[:, :6]
        t = vs - vx[:, :6]
        rel = float(patches.relative_mse(torch.from_numpy(out - vx[:, :6]), torch.from_numpy(t), torch.from_numpy(t)))
        perc = vx[:, :6] + res[:, 6:]
        texture = float(patches.texture_loss(*(torch.from_numpy(a) for a in (perc, vs, vx[:, :6]))))
        return {"val_mse": float(np.mean((out - vs) ** 2)), "val_rel_mse": rel,
                "val_gain_db": patches.plane_psnr_gain(vs, vx[:, :6], out),
                "val_perception_gain_db": patches.plane_psnr_gain(vs, vx[:, :6], perc), "val_perception_texture": texture}

    if not resumed and args.init_from:
        trunk.widen(g, trunk.load(args.init_from))
        run.ema = {k: v.detach().clone() for k, v in g.state_dict().items()}
        run.log["init_from"] = str(args.init_from)
    if not resumed:
        run.validate(validate)
    run.stop_on_signals()  # kill (SIGTERM) ends the run checkpointed

    def perception_rows_only(grad):  # in the adversarial phase the distortion head (rows 0..5) stays put
        return torch.cat([torch.zeros_like(grad[:6]), grad[6:]]) if run.step >= gan_start else grad

    g.tail.weight.register_hook(perception_rows_only)
    g.tail.bias.register_hook(perception_rows_only)
    cl = torch.channels_last
    while run.step < run.total_steps and run.within(None if args.hours is None else 3600 * args.hours):
        x, s = (torch.from_numpy(a) for a in patches.batch(train_pairs, run.seed, run.step, args.batch, PATCH))
        t = s - x[:, :6]
        x = x.contiguous(memory_format=cl)
        if run.step < gan_start:
            r = g(x)
            loss_d = patches.relative_mse(r[:, :6], t, t)  # both heads: error relative to the decode's
            run.optimize("g", loss_d + patches.relative_mse(r[:, 6:], t, t))
            run.advance({"rel_mse": loss_d.item(), "mse": F.mse_loss(r[:, :6], t).item()}, validate, args.validate_every)
            continue
        # adversarial phase: only the perception half of the tail learns; the distortion head stays as trained
        for p in g.parameters():
            p.requires_grad_(False)
        for p in tail:
            p.requires_grad_(True)
        r = g(x)
        fake = x[:, :6] + r[:, 6:]
        loss = patches.relative_mse(r[:, 6:], t, t) + args.adv_weight * F.softplus(-d(fake)).mean()
        if args.texture_weight:
            loss = loss + args.texture_weight * patches.texture_loss(fake, s, x[:, :6])
        run.optimize("tail", loss)
        loss_real = F.softplus(-d((x[:, :6] + t).contiguous(memory_format=cl))).mean()
        loss_fake = F.softplus(d(fake.detach().contiguous(memory_format=cl))).mean()
        run.optimize("d", loss_real + loss_fake)
        run.advance({"adv_l1": loss.item(), "d": (loss_real + loss_fake).item()}, validate, args.validate_every)
    log = run.finish()
    print(json.dumps({k: log[k] for k in ("step", "cpu_s", "wall_s")} | {"validation": log["validation"][-1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
