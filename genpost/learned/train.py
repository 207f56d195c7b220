"""What the learned plugins' training scripts share (training-time only: torch is imported when called):
the command line every one of them takes and the optimiser with its learning-rate schedule.

    ap = train.arguments(__doc__, steps=3000)        # --pairs --out --steps --batch --lr --seed --threads
    ap.add_argument(...)                              # the plugin's own options
    args = ap.parse_args(argv)
    rng, pairs = training_data.start(args.seed, args.threads, args.pairs)
    opt, sched = train.adam(net.parameters(), args.lr, args.steps)
"""

from __future__ import annotations

import argparse
from pathlib import Path

WARMUP = 200  # Adam's first steps overshoot a zero-initialised tail: the learning rate ramps up from 1 %
ETA_MIN = 2e-5  # where the cosine ends


def arguments(doc: str, steps: int, lr: float | None = 1e-3, steps_help: str | None = None) -> argparse.ArgumentParser:
    """A parser (described by the first line of ``doc``) with ``--pairs`` and ``--out`` (required folders),
    ``--steps`` (default ``steps``), ``--batch`` 8, ``--lr`` (default ``lr``; not added when None), ``--seed``
    0 and ``--threads`` 1."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--pairs", type=Path, required=True, help="(source, decode) pairs from python -m genpost.learned.training_data")
    ap.add_argument("--out", type=Path, required=True, help="folder for the exported weights and training.json")
    ap.add_argument("--steps", type=int, default=steps, help=steps_help)
    ap.add_argument("--batch", type=int, default=8)
    if lr is not None:
        ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="1 beats 2 on a shared 2-core box (no OpenMP spin)")
    return ap


def adam(params, lr: float, steps: int, warmup: int = WARMUP, eta_min: float = ETA_MIN):
    """``(optimizer, scheduler)``: Adam at ``lr``, its rate ramped linearly from 1 % over ``warmup`` steps,
    then cosine-annealed to ``eta_min`` over the remaining ``steps``; call ``scheduler.step()`` once a step."""
    import torch

    opt = torch.optim.Adam(params, lr)
    warm = torch.optim.lr_scheduler.LinearLR(opt, 0.01, 1.0, warmup)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps - warmup, 1), eta_min=eta_min)
    return opt, torch.optim.lr_scheduler.SequentialLR(opt, [warm, cosine], [warmup])
