"""Train the syntax extractor and the FiLM denoiser end to end on the corpus (resumable,
``genpost.learned.trainer``) and export both as safetensors + ONNX + training.json.

    python -m genpost.learned.corpus build
    python -m genpost_syntax_diffusion.train --out runs/syntax-diffusion --init-from runs/gan-enhance --hours 1
    python -m genpost_syntax_diffusion.train --out runs/syntax-diffusion --export genpost_syntax_diffusion/weights

Per sample (a patch drawn by ``genpost.learned.patches``): the extractor sees (source, decoded, QP), its
features averaged over the patch give the K-vector ``m``; the vector is ``ZMAX * tanh(m / ZMAX)``,
rounded straight-through (the denoiser sees exactly the integers the encoder sends), and with probability
``DROP`` replaced by zeros with the "present" flag off (the default mode, no vector). The denoiser sees a
state on the straight line from the decode to the source, ``x_t = decoded + t (source - decoded)`` (t = 0
with probability P_T0, else U(0, T_MAX): the deterministic few-step sampler), and predicts the source.
Loss: the error relative to the decode's per patch and plane (``patches.relative_mse``, the trunk's), so
every QP counts as in a BD-rate.

``--init-from`` starts the denoiser from the shared restoration trunk (``genpost.learned.trunk``): with
FiLM at zero it restores exactly as the trunk does, and training teaches the vector what to add. (The
shipped 1.0 weights, a U-Net trained from scratch in two stages on 11 photographs, never paid.) Needs the
``train`` extra. Reproducible for a given seed, step count and thread count.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from genpost.learned import corpus, modeling, patches, trainer, trunk
from genpost.learned.trainer import Trainer, seed_everything

PATCH = 128
DROP = 0.3  # probability of training the default mode (zero vector, flag off)
P_T0 = 0.7
T_MAX = 0.75
EXTRACTOR_STEM, DENOISER_STEM = "syntax_extractor_v1", "syntax_denoiser_v1"


def joint(blocks: int):
    """Extractor and denoiser as one module (one optimiser, one EMA)."""
    import torch

    from .model import GAIN, Denoiser, SyntaxExtractor

    class Joint(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ext, self.den = SyntaxExtractor(gain=GAIN), Denoiser(blocks=blocks)

    return Joint()


def draws(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The step's times and kept-vector flags (a function of the generator, so of (seed, step))."""
    t = np.where(rng.random(n) < P_T0, 0.0, rng.uniform(0.0, T_MAX, n)).astype(np.float32)
    keep = (rng.random(n) >= DROP).astype(np.float32)
    return t, keep


def forward(torch, net, src, dec, t, keep):
    """The denoiser's source estimate for a batch, the vector computed by the extractor on each patch."""
    from .model import ZMAX

    n, _, h, w = src.shape
    m = net.ext(torch.cat([src, dec], 1)).mean((2, 3))
    z = ZMAX * torch.tanh(m / ZMAX)
    z = z + (torch.round(z) - z).detach()  # straight-through: the decoder sees the rounded integers
    z = z * keep[:, None] / ZMAX
    xt = dec[:, :6] + t[:, None, None, None] * (src - dec[:, :6])
    planes = torch.cat([t[:, None], z, keep[:, None]], 1)[:, :, None, None].expand(n, -1, h, w)
    return net.den(torch.cat([xt, dec, planes], 1))


def arguments(argv):
    ap = trainer.arguments(__doc__, steps=16_000, validate_every=2000, lr=2e-4)
    trunk.add_arguments(ap)  # --init-from, --blocks
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = arguments(argv)
    import torch

    from .model import EXTRACTOR_IN, IN_CHANNELS, macs_per_pixel

    seed_everything(args.seed, args.threads)
    net = joint(args.blocks)
    extra = {"corpus_manifest_sha256": corpus.manifest_hash(), "batch": args.batch, "patch": PATCH, "lr": args.lr,
             "blocks": args.blocks, "drop": DROP, "p_t0": P_T0, "t_max": T_MAX,
             "params_denoiser": sum(p.numel() for p in net.den.parameters()),
             "params_extractor": sum(p.numel() for p in net.ext.parameters()),
             "kmac_per_px_denoiser_step": macs_per_pixel(net.den) / 1e3,
             "kmac_per_px_extractor": macs_per_pixel(net.ext) / 1e3}  # fmt: skip
    run = Trainer(args.out, {"sd": net}, {"sd": (args.lr, None)}, total_steps=args.steps, seed=args.seed,
                  threads=args.threads, ema="sd", checkpoint_s=60 * args.checkpoint_minutes, log_extra=extra)  # fmt: skip
    resumed = run.resume(strict=not args.export)
    if args.export:
        ema = run.ema_module(lambda: joint(run.log.get("blocks", args.blocks)))
        log = modeling.export(ema.ext, args.export, EXTRACTOR_STEM, EXTRACTOR_IN, run.summary())
        print(json.dumps(modeling.export(ema.den, args.export, DENOISER_STEM, IN_CHANNELS, log)["history"][-1:]))
        return 0
    if not resumed and args.init_from:
        trunk.start(run, net.den, args.init_from)
    cache = corpus.cache_dir(args.corpus)
    train_pairs, val_pairs = patches.load(cache, "train"), patches.load(cache, "val")
    vx, vs = (torch.from_numpy(a) for a in patches.fixed_set(val_pairs, 96, PATCH))
    print(f"{'resumed at step ' + str(run.step) if resumed else 'new run'}: {train_pairs.count} train pairs from "
          f"{len(train_pairs.sources)} sources, {val_pairs.count} val pairs from {len(val_pairs.sources)}", file=sys.stderr)  # fmt: skip

    def validate(r: Trainer) -> dict:
        m = r.ema_module(lambda: joint(args.blocks)).eval()
        out = {}
        for name, keep in (("default", 0.0), ("vector", 1.0)):
            with torch.no_grad():
                est = forward(torch, m, vs, vx, torch.zeros(len(vx)), torch.full((len(vx),), keep)).numpy()
            out[f"val_gain_db_{name}"] = patches.plane_psnr_gain(vs.numpy(), vx[:, :6].numpy(), est)
            if name == "default":
                out["val_mse"] = float(np.mean((est - vs.numpy()) ** 2))
        return out

    if not resumed:
        run.validate(validate)
    run.stop_on_signals()  # kill (SIGTERM) ends the run checkpointed
    while run.step < run.total_steps and run.within(None if args.hours is None else 3600 * args.hours):
        dec, src = (torch.from_numpy(a) for a in patches.batch(train_pairs, run.seed, run.step, args.batch, PATCH))
        t, keep = (torch.from_numpy(a) for a in draws(len(src), np.random.default_rng([run.seed, run.step, 1])))
        est = forward(torch, net, src, dec, t, keep)
        loss = patches.relative_mse(est, src, src - dec[:, :6])
        run.optimize("sd", loss)
        run.advance({"rel_mse": loss.item()}, validate, args.validate_every)
    log = run.finish()
    print(json.dumps({k: log[k] for k in ("step", "cpu_s", "wall_s")} | {"validation": log["validation"][-1:]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
