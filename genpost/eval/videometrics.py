"""ColorVideoVDP (``cvvdp``, JOD: 10 = no visible difference) when its package is installed; a one-line
reason when not. A full-reference *video* metric with temporal and colour models: it sees flicker and
texture that frame metrics miss. ``pip install "genpost[perception]"`` then ``pip install --no-deps
cvvdp==0.5.7`` installs it (MIT; every parameter ships in its wheel, nothing is downloaded; no-deps because
its metadata also pulls the PyPI package "ffmpeg", which overwrites ffmpeg-python's module).

Why the torchvision step: pycvvdp imports ``torchvision.transforms.GaussianBlur`` (pure Python). The PyPI
torchvision 0.28 wheel pairs with torch 2.13 but its C++ ops are linked against the CUDA build of torch, so
next to the CPU torch they do not load; torchvision then still registers fake kernels for two of those ops
(``nms``, ``qnms``; its other registrations check that the ops loaded) and the import fails ("operator
torchvision::nms does not exist"). ``_import_torchvision`` defines just those two operator schemas when
the ops did not load, so the import completes; calling them still fails as it should (no kernel), and
neither genpost nor pycvvdp calls them. Where the ops do load (a matching CPU or CUDA build), nothing is
defined.
"""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np

from ..errors import one_line

NAMES = ("cvvdp",)
DISPLAY = "standard_fhd"  # 24" 1920x1080 SDR display at 200 cd/m^2 viewed from 60 cm (cvvdp's model)
VideoScorer = Callable[[list, list, float], float]  # (reference RGB frames, test RGB frames, fps) -> score
_TORCHVISION_LIB = None  # the schemas defined for torchvision's ops that did not load (kept alive)


def _import_torchvision():
    global _TORCHVISION_LIB
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc) or _TORCHVISION_LIB is not None:
            raise
        import torch

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_LIB = lib
        import torchvision
    return torchvision


def _cvvdp() -> VideoScorer:
    try:
        import torch
    except ImportError:
        raise LookupError('needs torch and cvvdp (pip install "genpost[perception]"; pip install --no-deps cvvdp==0.5.7)') from None
    import importlib.util

    if importlib.util.find_spec("pycvvdp") is None:
        raise LookupError('needs cvvdp (pip install "genpost[perception]"; pip install --no-deps cvvdp==0.5.7)')
    _import_torchvision()
    import pycvvdp

    metric = pycvvdp.cvvdp(display_name=DISPLAY, device=torch.device("cpu"), quiet=True)

    def score(reference: list, test: list, fps: float) -> float:
        """JOD of ``test`` against ``reference``: lists of (H, W, 3) display-encoded RGB frames in 0..1."""
        ref = np.stack(reference).astype(np.float16)
        tst = np.stack(test).astype(np.float16)
        with torch.no_grad():
            jod, _ = metric.predict(tst, ref, dim_order="FHWC", frames_per_second=float(fps))
        return float(jod)

    return score


def load(names=NAMES) -> dict[str, VideoScorer | str]:
    """Each video metric's scorer, or the one-line reason it cannot run here."""
    out: dict[str, VideoScorer | str] = {}
    for name in names:
        try:
            out[name] = _cvvdp()
        except LookupError as exc:
            out[name] = str(exc)
        except Exception as exc:  # a broken install must not stop an evaluation
            out[name] = f"cannot load: {one_line(exc)}"
    return out
