"""Benchmark: how much content adaptation could gain at most, per parameter group (no rate counted).

    python benchmarks/adapt_ceiling.py SOURCE.y4m [--qp 37] [--steps 300] [--json out.json]

Encodes SOURCE with x265 (medium) at QP, then fine-tunes gan-enhance's generator on 8 evenly spread
(source, decode) pairs, as the encoder's period pass does, with one parameter group free at a time:
biases (198 values), biases + the output layer (~2k), and every weight (~52k). It reports each one's PSNR
change per plane over every frame against the decode (a plane keeps the decode where the network loses,
as the per-frame plane mask does), beside the shipped weights'. The update's bits are NOT counted: this
is the ceiling the RD choice works under, and shows whether a larger update group could pay at all.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from _report import report

from genpost import media
from genpost.learned import weights
from genpost.learned.modeling import pack

GROUPS = {"bias": 3e-3, "bias+tail": 1e-3, "all": 1e-4}  # Adam learning rate per group (tuned on 720p BBB)


def frames(source: Path, base: Path) -> tuple[list, list]:
    srcs, decs = [], []
    with media.InputFile(source) as s, media.InputFile(base) as b:
        for original, decoded in zip(s.frames(), b.frames()):
            srcs.append(original)
            decs.append(decoded)
    return srcs, decs


def main(argv=None) -> None:
    import torch
    from genpost_gan_enhance import GanEnhance
    from genpost_gan_enhance.engine import make_generator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--qp", type=int, default=37)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.mkv"
        media.plain_transcode(args.source, base, media.EncoderSettings(qp=args.qp))
        kbits = base.stat().st_size * 8 / 1000
        srcs, decs = frames(args.source, base)
    top, n = decs[0].max_value, len(decs)
    x_all = torch.from_numpy(np.stack([pack(d.y, d.u, d.v, top, args.qp) for d in decs]))
    target = torch.from_numpy(np.stack([pack(s.y, s.u, s.v, top)[:6] for s in srcs])) - x_all[:, :6]
    entry = GanEnhance.weights[1]
    shipped = weights.load_safetensors(weights.resolve(GanEnhance(), entry), entry.sha256, "pt")

    def mse(residual) -> np.ndarray:
        e = (residual - target) ** 2
        return np.array([e[:, :4].mean().item(), e[:, 4].mean().item(), e[:, 5].mean().item()])

    def gain(net) -> list[float]:
        with torch.no_grad():
            r = torch.cat([net(x_all[i : i + 1])[:, :6] for i in range(n)])
        return (10 * np.log10(base_mse / np.minimum(mse(r), base_mse))).round(3).tolist()

    base_mse = mse(torch.zeros_like(target))
    generic = make_generator()
    generic.load_state_dict(shipped)
    result = {"source": str(args.source), "qp": args.qp, "frames": n, "base_kbits": round(kbits, 1),
              "base_psnr": (10 * np.log10(1 / base_mse)).round(3).tolist(), "shipped_gain_db": gain(generic.eval()),
              "tuned": {}}  # fmt: skip
    train = np.linspace(0, n - 1, 8).round().astype(int)
    for group, lr in GROUPS.items():
        net = make_generator()
        net.load_state_dict(shipped)
        free = [p for name, p in net.named_parameters()
                if group == "all" or name.endswith("bias") or (group == "bias+tail" and name.startswith("tail"))]  # fmt: skip
        for p in net.parameters():
            p.requires_grad_(any(p is q for q in free))
        opt = torch.optim.Adam(free, lr)
        rng, start = np.random.default_rng(0), time.monotonic()
        for _ in range(args.steps):
            xs, ts = [], []
            for _ in range(8):
                i, c = train[rng.integers(len(train))], 64
                y0, x0 = rng.integers(x_all.shape[2] - c + 1), rng.integers(x_all.shape[3] - c + 1)
                xs.append(x_all[i, :, y0 : y0 + c, x0 : x0 + c])
                ts.append(target[i, :, y0 : y0 + c, x0 : x0 + c])
            loss = ((net(torch.stack(xs))[:, :6] - torch.stack(ts)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        result["tuned"][group] = {"params": sum(p.numel() for p in free), "gain_db": gain(net.eval()),
                                  "seconds": round(time.monotonic() - start, 1)}  # fmt: skip
        print(json.dumps({group: result["tuned"][group]}), flush=True)
    report(result, args.json, indent=2)


if __name__ == "__main__":
    main()
