"""Install hints that work wherever genpost came from.

genpost's extras (``pip install "genpost[ffmpeg]"``) resolve only where pip can find genpost itself, e.g.
``pip install ".[ffmpeg]"`` in a clone; the packages an extra names install anywhere. Keep ``EXTRAS`` equal
to ``[project.optional-dependencies]`` in pyproject.toml (tests/test_cli_contract.py checks it).
"""

from __future__ import annotations

from .errors import GenpostError

EXTRAS: dict[str, tuple[str, ...]] = {
    "weights": ("safetensors>=0.4",),
    "onnx": ("onnxruntime>=1.17",),
    "ffmpeg": ("imageio-ffmpeg>=0.5", "ffmpeg-python>=0.2", "pillow>=10.1"),
    "adapt": ("torch==2.13.0",),
    "eval": ("imageio-ffmpeg>=0.8", "ffmpeg-python>=0.2", "matplotlib>=3.8"),
    "ray": ("ray>=2.60,<3",),
    "fast": ("numba>=0.60",),
    "perception": ("torchvision==0.28.0", "torch==2.13.0", "einops>=0.8.1", "huggingface_hub>=0.33.4", "imageio>=2.19.5", "PyEXR>=0.3.10", "ffmpeg-python>=0.2", "scipy>=1.10", "matplotlib>=3.8"),
}


class MissingExtra(GenpostError, RuntimeError):
    """A feature asked for needs an optional package that is not installed (exit 2, before any work)."""

    exit_code = 2


def hint(extra: str, only: tuple[str, ...] | None = None) -> str:
    """``pip install "pkg>=x" ...`` for an extra (or the ``only`` packages of it, by name prefix)."""
    wanted = [p for p in EXTRAS[extra] if only is None or p.startswith(only)]
    return "pip install " + " ".join(f'"{p}"' for p in wanted) + f' (genpost\'s "{extra}" extra)'
