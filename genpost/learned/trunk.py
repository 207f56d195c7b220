"""The shared restoration trunk: one long training run (gan-enhance's generator, ``runs/gan-enhance``)
whose weights start the other families' networks, so the CPU-hours of that run serve all of them.

Why one trunk: every family's decoder is a ``ResidualConvStack`` at chroma resolution that sees the packed
decode and a QP plane and predicts the source as a residual on it; what differs is what else it sees
(the flow's state and time, the diffusion's noisy residual, time and latent). Written into such a network
with those extra inputs at zero weight, the trunk makes it restore exactly as the trunk does (one Euler
step of the flow from t = 0, the diffusion's one-step mean mode without latent); the family's own training
then only has to learn what its extra inputs add. torch is imported when called.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def load(path: str | Path) -> dict:
    """The trunk's weights: a run folder's EMA (``checkpoint.safetensors``) or an exported safetensors."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        return {k[4:]: v for k, v in load_file(str(path / "checkpoint.safetensors")).items() if k.startswith("ema.")}
    return load_file(str(path))


def warm_start(net, trunk: dict, decoded_at: int, out_scale: float = 1.0) -> None:
    """Write the trunk (input ``x - 0.5`` over 7 channels: 6 packed planes and the QP plane; outputs 0..5
    its distortion head) into ``net``, a ``ResidualConvStack`` whose head sees the decode minus 0.5 at
    channels ``decoded_at .. decoded_at + 5`` and the plain QP plane right after. Its other inputs start at
    zero weight; the trunk saw ``qp - 0.5``, so that shift moves into the head's bias (exact away from the
    frame edge, where zero padding differs). ``out_scale`` multiplies the output (a net that predicts the
    residual in other units). Blocks beyond the trunk's keep their initialisation."""
    import torch

    sd = net.state_dict()
    with torch.no_grad():
        w = trunk["head.weight"]  # (C, 7, 3, 3)
        head = torch.zeros_like(sd["head.weight"])
        head[:, decoded_at : decoded_at + 6] = w[:, :6]
        head[:, decoded_at + 6] = w[:, 6]
        sd["head.weight"] = head
        sd["head.bias"] = trunk["head.bias"] - 0.5 * w[:, 6].sum((1, 2))
        for k, v in trunk.items():
            if k.startswith("body.") and k in sd:
                sd[k] = v.clone()
        sd["tail.weight"] = trunk["tail.weight"][:6] * out_scale
        sd["tail.bias"] = trunk["tail.bias"][:6] * out_scale
    net.load_state_dict(sd)


def widen(net, trunk: dict) -> None:
    """Write a trained ``ResidualConvStack`` of the same inputs and outputs (``trunk``) into ``net``, a wider
    and/or deeper one, so that ``net`` computes exactly what the trunk does: the trunk's channels fill the
    first channels of every conv, the new channels' inputs keep their initialisation but reach the old
    channels and the tail through zero weights, and the convs beyond the trunk's depth start at zero (a
    residual block ``h + act(0)`` is the identity). Training then grows the new capacity from there, so a
    larger "quality" network starts where the long trunk run ended instead of from scratch."""
    import torch

    sd = net.state_dict()
    c = trunk["head.weight"].shape[0]
    with torch.no_grad():
        sd["head.weight"][:c] = trunk["head.weight"]
        sd["head.bias"][:c] = trunk["head.bias"]
        for k in [k for k in sd if k.startswith("body.") and k.endswith(".weight")]:
            b = k[: -len(".weight")]
            if k in trunk:
                sd[k][:c, c:] = 0
                sd[k][:c, :c] = trunk[k]
                sd[b + ".bias"][:c] = trunk[b + ".bias"]
            else:
                sd[k].zero_()
                sd[b + ".bias"].zero_()
        sd["tail.weight"].zero_()
        sd["tail.weight"][:, :c] = trunk["tail.weight"]
        sd["tail.bias"].copy_(trunk["tail.bias"])
    net.load_state_dict(sd)


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """A family's training options for the trunk: ``--init-from`` (a gan-enhance run folder or exported
    safetensors) and ``--blocks`` (its network's residual blocks; the trunk has 5)."""
    ap.add_argument("--init-from", type=Path, default=None, help="the shared trunk: a gan-enhance run folder or safetensors")
    ap.add_argument("--blocks", type=int, default=5, help="residual blocks of the family's network (the trunk has 5)")


def start(run, net, path: str | Path, out_scale: float = 1.0) -> None:
    """Start a new run (``genpost.learned.trainer.Trainer``) from the trunk: ``warm_start`` of ``net`` (the
    family's trunk-shaped network, decode at input channel 6), the run's EMA taken afresh from its module
    and the trunk's path in the log."""
    warm_start(net, load(path), decoded_at=6, out_scale=out_scale)
    run.ema = {k: v.detach().clone() for k, v in run.modules[run.ema_name].state_dict().items()}
    run.log["init_from"] = str(path)
