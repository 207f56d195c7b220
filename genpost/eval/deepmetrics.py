"""LPIPS (AlexNet, v0.1) and DISTS when their weights are on this machine; a one-line reason when not.

Nothing here downloads anything. The backbones are read from the torch hub cache under the file names
torchvision uses (``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``), the
learned heads from the ``lpips`` and ``DISTS_pytorch`` packages' own files (found without importing those
packages, which import torchvision). The networks are rebuilt here in plain torch with torchvision's layer
layout, so torch is the only runtime need, and only when these metrics run. Inputs: float RGB in [0, 1],
(H, W, 3), from ``perceptual.metric_rgb``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import GenpostError, one_line

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
VGG16_FILE = "vgg16-397923af.pth"
NAMES = ("lpips", "dists")
Scorer = Callable[[np.ndarray, np.ndarray], float]


class Unavailable(GenpostError):
    """A metric cannot run here; the message is the one-line reason reported in place of its value."""


def hub_checkpoints() -> Path:
    """torch's hub cache folder for checkpoints ($TORCH_HOME/hub, default ~/.cache/torch/hub)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "torch"
    )
    return Path(home) / "hub" / "checkpoints"


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        if (Path(folder).joinpath(*parts)).is_file():
            return Path(folder).joinpath(*parts)
    return None


def _require(path: Path | None, what: str) -> Path:
    if path is None or not path.is_file():
        raise Unavailable(f"{what} not found{f' at {path}' if path else ''}")
    return path


def _torch():
    try:
        import torch
    except ImportError:
        raise Unavailable("needs torch (pip install torch)") from None
    return torch


def load(names=NAMES) -> dict[str, Scorer | str]:
    """Each metric's scorer, or the one-line reason it cannot run here."""
    out: dict[str, Scorer | str] = {}
    for name in names:
        try:
            out[name] = {"lpips": _lpips, "dists": _dists}[name]()
        except Unavailable as exc:
            out[name] = str(exc)
        except Exception as exc:  # a damaged checkpoint must not stop an evaluation
            out[name] = f"cannot load: {one_line(exc)}"
    return out


# ---------------------------------------------------------------- networks (torchvision's layouts)


def _features(torch, layout: list, state: dict):
    """An nn.Sequential named like torchvision's ``features`` (conv / relu / max-pool by index)."""
    nn = torch.nn
    layers = []
    for item in layout:
        if item == "R":
            layers.append(nn.ReLU(inplace=False))
        elif item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif item == "M3":
            layers.append(nn.MaxPool2d(3, 2))
        else:
            cin, cout, k, stride, pad = item
            layers.append(nn.Conv2d(cin, cout, k, stride, pad))
    seq = nn.Sequential(*layers)
    own = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    seq.load_state_dict(own, strict=True)
    return seq.eval()


ALEXNET = [(3, 64, 11, 4, 2), "R", "M3", (64, 192, 5, 1, 2), "R", "M3", (192, 384, 3, 1, 1), "R",
           (384, 256, 3, 1, 1), "R", (256, 256, 3, 1, 1), "R"]  # fmt: skip
ALEX_TAPS = (1, 4, 7, 9, 11)  # relu1..relu5, LPIPS's slices
VGG16 = [(3, 64, 3, 1, 1), "R", (64, 64, 3, 1, 1), "R", "M", (64, 128, 3, 1, 1), "R", (128, 128, 3, 1, 1), "R", "M",
         (128, 256, 3, 1, 1), "R", (256, 256, 3, 1, 1), "R", (256, 256, 3, 1, 1), "R", "M",
         (256, 512, 3, 1, 1), "R", (512, 512, 3, 1, 1), "R", (512, 512, 3, 1, 1), "R", "M",
         (512, 512, 3, 1, 1), "R", (512, 512, 3, 1, 1), "R", (512, 512, 3, 1, 1), "R"]  # fmt: skip
VGG_TAPS = (3, 8, 15, 22, 29)  # relu1_2 .. relu5_3, DISTS's stages
VGG_POOLS = (4, 9, 16, 23)


def _taps(seq, x, taps, pool=None):
    """Outputs after the layers in ``taps``; ``pool`` replaces VGG16's max-pools (DISTS's L2 pooling)."""
    out = []
    for i, layer in enumerate(seq):
        x = pool(x) if pool is not None and i in VGG_POOLS else layer(x)
        if i in taps:
            out.append(x)
        if i >= taps[-1]:
            break
    return out


def _tensor(torch, rgb: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32))


def _lpips() -> Scorer:
    heads_path = _require(_package_file("lpips", "weights", "v0.1", "alex.pth"), "the lpips package's alex.pth")
    backbone = _require(hub_checkpoints() / ALEXNET_FILE, "AlexNet backbone")
    torch = _torch()
    net = _features(torch, ALEXNET, torch.load(backbone, map_location="cpu", weights_only=True))
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    lins = [heads[f"lin{i}.model.1.weight"] for i in range(5)]
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def score(reference: np.ndarray, test: np.ndarray) -> float:
        """LPIPS v0.1: unit-normalised AlexNet activations, squared difference, learned 1x1 weights,
        spatial mean, summed over the 5 layers. 0 = identical; lower is better."""
        with torch.no_grad():
            feats = [_taps(net, ((_tensor(torch, p) * 2 - 1) - shift) / scale, ALEX_TAPS) for p in (reference, test)]
            total = 0.0
            for f0, f1, w in zip(*feats, lins):
                n0 = f0 / (torch.sqrt((f0**2).sum(1, keepdim=True)) + 1e-10)
                n1 = f1 / (torch.sqrt((f1**2).sum(1, keepdim=True)) + 1e-10)
                total += float(torch.nn.functional.conv2d((n0 - n1) ** 2, w).mean())
        return total

    return score


def _dists() -> Scorer:
    weights = _package_file("DISTS_pytorch", "weights.pt") or Path(sys.prefix) / "weights.pt"
    heads_path = _require(weights, "the DISTS_pytorch package's weights.pt")
    backbone = _require(hub_checkpoints() / VGG16_FILE, "VGG16 backbone")
    torch = _torch()
    net = _features(torch, VGG16, torch.load(backbone, map_location="cpu", weights_only=True))
    heads = torch.load(heads_path, map_location="cpu", weights_only=True)
    w_sum = heads["alpha"].sum() + heads["beta"].sum()
    chns = [3, 64, 128, 256, 512, 512]
    alpha, beta = torch.split(heads["alpha"] / w_sum, chns, dim=1), torch.split(heads["beta"] / w_sum, chns, dim=1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    hann = torch.tensor(np.hanning(5)[1:-1], dtype=torch.float32)
    g = hann[:, None] * hann[None, :]
    g = g / g.sum()

    def l2pool(x):
        """DISTS's replacement of max-pooling: sqrt of a 3x3 Hann-weighted mean of squares, stride 2."""
        filt = g[None, None].repeat(x.shape[1], 1, 1, 1)
        return (torch.nn.functional.conv2d(x * x, filt, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()

    def score(reference: np.ndarray, test: np.ndarray) -> float:
        """DISTS: structure (correlation) and texture (mean) similarity of VGG16 feature maps, learned
        weights, 1 - sum. 0 = identical; lower is better."""
        with torch.no_grad():
            feats = []
            for p in (reference, test):
                x = _tensor(torch, p)
                feats.append([x, *_taps(net, (x - mean) / std, VGG_TAPS, l2pool)])
            d1 = d2 = 0.0
            for f0, f1, a, b in zip(*feats, alpha, beta):
                m0, m1 = f0.mean([2, 3], keepdim=True), f1.mean([2, 3], keepdim=True)
                d1 += float((a * (2 * m0 * m1 + 1e-6) / (m0**2 + m1**2 + 1e-6)).sum())
                v0, v1 = ((f0 - m0) ** 2).mean([2, 3], keepdim=True), ((f1 - m1) ** 2).mean([2, 3], keepdim=True)
                cov = (f0 * f1).mean([2, 3], keepdim=True) - m0 * m1
                d2 += float((b * (2 * cov + 1e-6) / (v0 + v1 + 1e-6)).sum())
        return 1.0 - (d1 + d2)

    return score
