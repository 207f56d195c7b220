"""Train the syntax extractor and the FiLM U-Net denoiser end to end; export both as safetensors + ONNX.

    python -m genpost.training_data /tmp/gan                       # (source, x265 decode) pairs, QP 27..42
    python -m genpost_syntax_diffusion.train --pairs /tmp/gan/pairs --out /tmp/sd/stage1 --steps 4500
    python -m genpost_syntax_diffusion.train --pairs /tmp/gan/pairs --out genpost_syntax_diffusion/weights \
        --init /tmp/sd/stage1 --steps 2200 --lr 5e-4

Two stages (the shipped weights): stage 1 trains both nets from scratch with uniform noise as the rounding
proxy and extractor gain 1; its vector collapsed to zeros (the denoiser learnt to ignore a noise-dominated
vector, so the extractor got no signal). Stage 2 continues from stage 1 with the extractor output scaled by
``model.GAIN`` (8) and straight-through rounding (the denoiser sees exactly the integers the encoder sends).

Per sample (random 128x128 luma patch of a pair, ``genpost.training_data.random_patch``): the extractor
sees (source, decoded, QP) and its features are averaged over the patch to the K-vector ``m``; the vector
is ``ZMAX * tanh(m / ZMAX)``, rounded (stage 2, straight-through) or plus uniform noise in [-0.5, 0.5]
(stage 1), and with probability ``DROP`` it is replaced by zeros with the "present" flag off (the
default mode, no side info). The denoiser then sees a state on the straight line from the decode to the
source, ``x_t = decoded + t (source - decoded)`` (t = 0 with probability 0.7, else U(0, 0.75): the
deterministic few-step sampler), and predicts the source; loss = MSE over the 6 packed channels (= SSE over
Y, U, V, the plugin's RD distortion). Reproducible for a given seed, steps and thread count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from genpost.learned import modeling, train, training_data
from genpost.learned.training_data import random_patch

PATCH = 128
DROP = 0.3  # probability of training the default mode (zero vector, flag off)
P_T0 = 0.7
T_MAX = 0.75
STRAIGHT_THROUGH = True  # set by --init runs (the second stage); the first stage used noise


def batch(pairs, rng: np.random.Generator, size: int):
    srcs, decs, ts, keep, noise = [], [], [], [], []
    for _ in range(size):
        src, dec = random_patch(pairs, rng, PATCH)
        srcs.append(src)
        decs.append(dec)
        ts.append(0.0 if rng.random() < P_T0 else rng.uniform(0.0, T_MAX))
        keep.append(float(rng.random() >= DROP))
    noise = rng.uniform(-0.5, 0.5, (size, 16)).astype(np.float32)
    return (np.stack(srcs), np.stack(decs), np.asarray(ts, np.float32), np.asarray(keep, np.float32), noise)


def forward(ext, den, src, dec, t, keep, noise):
    import torch

    from .model import ZMAX

    n, _, h, w = src.shape
    m = ext(torch.cat([src, dec], 1)).mean((2, 3))
    z = ZMAX * torch.tanh(m / ZMAX)
    if STRAIGHT_THROUGH:  # the decoder sees exactly the rounded integers; gradients pass as if unrounded
        z = z + (torch.round(z) - z).detach()
    else:  # uniform noise as the proxy of rounding
        z = z + noise
    z = z * keep[:, None] / ZMAX
    xt = dec[:, :6] + t[:, None, None, None] * (src - dec[:, :6])
    planes = torch.cat([t[:, None], z, keep[:, None]], 1)[:, :, None, None].expand(n, -1, h, w)
    return den(torch.cat([xt, dec, planes], 1))


def main(argv=None) -> None:
    ap = train.arguments(__doc__, 4000)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (stage 2: straight-through rounding)")
    ap.add_argument("--max-seconds", type=float, default=1e9, help="stop early (the cosine schedule is cut)")
    args = ap.parse_args(argv)

    import torch

    from .model import GAIN, Denoiser, SyntaxExtractor, macs_per_pixel

    rng, pairs = training_data.start(args.seed, args.threads, args.pairs)
    ext, den = SyntaxExtractor(gain=GAIN if args.init is not None else 1.0), Denoiser()
    global STRAIGHT_THROUGH
    STRAIGHT_THROUGH = args.init is not None
    if args.init is not None:  # second stage: continue from exported weights (safetensors)
        from safetensors.torch import load_file

        ext.load_state_dict(load_file(str(args.init / "syntax_extractor_v1.safetensors")))
        den.load_state_dict(load_file(str(args.init / "syntax_denoiser_v1.safetensors")))
    params = list(ext.parameters()) + list(den.parameters())
    log = {"pairs": len(pairs), "params_denoiser": sum(p.numel() for p in den.parameters()),
           "params_extractor": sum(p.numel() for p in ext.parameters()),
           "kmac_per_px_denoiser_step": macs_per_pixel(den) / 1e3, "kmac_per_px_extractor": macs_per_pixel(ext) / 1e3}  # fmt: skip
    print(json.dumps(log), flush=True)
    opt, sched = train.adam(params, args.lr, args.steps)
    start, run, base_run = time.time(), 0.0, 0.0
    step = 0
    for step in range(args.steps):
        src, dec, t, keep, noise = (torch.from_numpy(a) for a in batch(pairs, rng, args.batch))
        pred = forward(ext, den, src, dec, t, keep, noise)
        loss = ((pred - src) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        base = float(((dec[:, :6] - src) ** 2).mean())
        run = 0.98 * run + 0.02 * loss.item() if step else loss.item()
        base_run = 0.98 * base_run + 0.02 * base if step else base
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step} loss {run:.7f} decode {base_run:.7f} t {time.time() - start:.0f}s", flush=True)
        if time.time() - start > args.max_seconds:
            break
    log.update(steps=step + 1, seconds=round(time.time() - start), seed=args.seed, batch=args.batch, patch=PATCH,
               lr=args.lr, threads=args.threads, drop=DROP, p_t0=P_T0, t_max=T_MAX,
               final_loss=run, final_decode_mse=base_run, straight_through=STRAIGHT_THROUGH,
               init=None if args.init is None else str(args.init))  # fmt: skip
    log = modeling.export(ext, args.out, "syntax_extractor_v1", 13, log)
    log = modeling.export(den, args.out, "syntax_denoiser_v1", 31, log)
    print(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
