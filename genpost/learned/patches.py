"""Training patches from the corpus's coded pairs: loaded by split, drawn by source so no source dominates,
packed exactly as the plugins pack frames at run time (``genpost.learned.modeling.pack``). numpy only.

A batch is a pure function of ``(seed, step)``: a resumed run draws the same patches as one that never stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .modeling import pack


@dataclass
class Pairs:
    """The (source, decode) pairs of one split, grouped by source."""

    split: str
    by_source: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.by_source.values())

    @property
    def sources(self) -> list[str]:
        return sorted(self.by_source)


def load(cache: Path, split: str) -> Pairs:
    """Every pair of ``split`` the corpus build wrote (``CACHE/pairs.json`` lists them, in name order)."""
    cache = Path(cache)
    names = json.loads((cache / "pairs.json").read_text())["pairs"]
    out = Pairs(split)
    for name in names:
        with np.load(cache / "pairs" / name) as z:
            if str(z["split"]) != split:
                continue
            pair = {k: z[k] for k in ("sy", "su", "sv", "dy", "du", "dv")}
            pair.update(qp=int(z["qp"]), bit_depth=int(z["bit_depth"]), name=name)
            out.by_source.setdefault(str(z["source"]), []).append(pair)
    return out


def crop(pair: dict, i: int, j: int, c: int, flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """The packed (source (6, c, c), decode + QP plane (7, c, c)) window at chroma position (i, j)."""

    def part(key: str, s: int) -> np.ndarray:
        a = pair[key][s * i : s * (i + c), s * j : s * (j + c)]
        return a[:, ::-1] if flip else a

    top = (1 << pair["bit_depth"]) - 1
    src = pack(part("sy", 2), part("su", 1), part("sv", 1), top)
    dec = pack(part("dy", 2), part("du", 1), part("dv", 1), top, pair["qp"])
    return src, dec


def batch(pairs: Pairs, seed: int, step: int, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` random ``patch`` x ``patch`` (luma) windows: (inputs (N, 7, c, c), sources (N, 6, c, c)),
    c = patch / 2. A source is drawn uniformly, then a pair of it, then a window, flipped half the time."""
    rng = np.random.default_rng([seed, step])
    names = pairs.sources
    xs, ss = [], []
    c = patch // 2
    for _ in range(size):
        group = pairs.by_source[names[rng.integers(len(names))]]
        p = group[rng.integers(len(group))]
        h, w = p["su"].shape
        src, dec = crop(p, int(rng.integers(0, h - c + 1)), int(rng.integers(0, w - c + 1)), c, bool(rng.integers(2)))
        xs.append(dec)
        ss.append(src)
    return np.stack(xs), np.stack(ss)


def fixed_set(pairs: Pairs, count: int, patch: int, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """A fixed validation set: the same ``count`` windows every time (for losses comparable across runs)."""
    return batch(pairs, seed, 0, count, patch)


PLANE_CHANNELS = (("y", slice(0, 4)), ("u", slice(4, 5)), ("v", slice(5, 6)))  # in the packed layout


def plane_psnr_gain(src: np.ndarray, dec: np.ndarray, out: np.ndarray) -> dict[str, float]:
    """dB gained per plane (Y from the 4 luma phases, U, V) by ``out`` over ``dec`` against ``src``, from
    the mean squared error over the whole set."""
    gains = {}
    for plane, ch in PLANE_CHANNELS:
        before = float(np.mean((dec[:, ch] - src[:, ch]) ** 2))
        after = float(np.mean((out[:, ch] - src[:, ch]) ** 2))
        gains[plane] = round(10 * np.log10(before / max(after, 1e-20)), 4)
    return gains


PLANE_WEIGHTS = (4 / 6, 1 / 6, 1 / 6)  # Y (its 4 phases), U, V: by sample count
REL_FLOOR = 4e-5  # in the 0..1 scale (an RMS error of about 1.6 8-bit codes): nearly lossless patches weigh
# no more than this, or a few flat patches would steer every step (a floor of 1e-6 diverged)


def relative_mse(out, target, decoded_error):
    """The training loss aligned with BD-rate: each patch's and plane's squared error relative to the
    decode's own (``decoded_error``: the target residual), so a dB gained at QP 27 counts as much as one at
    QP 42, as in the BD-rate's mean over the quality range. Torch tensors (N, 6, h, w)."""
    loss = 0.0
    for w, (_, ch) in zip(PLANE_WEIGHTS, PLANE_CHANNELS):
        err = ((out[:, ch] - target[:, ch]) ** 2).mean((1, 2, 3))
        base = (decoded_error[:, ch] ** 2).mean((1, 2, 3))
        loss = loss + w * (err / base.clamp_min(REL_FLOOR)).mean()
    return loss


def texture_loss(out, source, decoded):
    """The realism term of a perception head: how far the local contrast of the output's luma (the standard
    deviation of each 8x8 cell, the encoder's texture-energy term, ``genpost.learned.blocks``) is from the
    source's, relative to how far the decode's is. A fidelity loss smooths texture away; this one asks for
    it back. Torch tensors (N, 6, h, w) of packed planes; 1.0 is the decode's own loss."""
    from torch.nn import functional as F

    def cell_sd(planes):
        y = F.pixel_shuffle(planes[:, :4], 2)  # the luma phases back to a luma plane
        return F.unfold(y, 8, stride=8).std(1)

    sd = cell_sd(source)
    return ((cell_sd(out) - sd) ** 2).mean() / ((cell_sd(decoded) - sd) ** 2).mean().clamp_min(1e-8)
