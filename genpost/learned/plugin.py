"""What every learned plugin package writes the same way: its ``register_postprocessors`` hook, its
weights folder, how it reads its declared options and the QP it conditions on.

The hook is made by one call instead of the same boilerplate in every ``__init__.py``:

    from genpost.learned.plugin import register_hook
    from .postprocessor import MyFilter

    api_version = 1  # the genpost plugin API the package is written for
    __version__ = MyFilter.version
    register_postprocessors = register_hook(MyFilter)

The result is an ordinary ``@hookimpl`` function: pluggy finds it under the module attribute name
``register_postprocessors`` when genpost registers the package through its ``genpost`` entry point, exactly
as if it were written out by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .. import options as opt
from ..hookspecs import hookimpl
from ..options import Option, Value
from ..postprocessor import Context, WeightsFile


def register_hook(*classes):
    """A ``register_postprocessors`` hook implementation that registers ``classes``, in order."""

    @hookimpl
    def register_postprocessors(register):
        for cls in classes:
            register(cls)

    return register_postprocessors


def weights_dir(module_file: str) -> Path:
    """The ``weights`` folder beside a plugin module (pass ``__file__``), as an absolute path:
    genpost.weights resolves a relative path against the module of the instance's class, which for a
    subclass defined elsewhere (the contract kit's tracer) is not the plugin's package."""
    return Path(module_file).resolve().parent / "weights"


def shipped_weights(module_file: str, digests: Mapping[str, str]) -> tuple[WeightsFile, ...]:
    """``PostProcessor.weights`` for files in the ``weights`` folder beside a plugin module (pass
    ``__file__``): file name -> sha256, in order."""
    folder = weights_dir(module_file)
    return tuple(WeightsFile(str(folder / name), digest) for name, digest in digests.items())


def option_reader(plugin: str, declared: Iterable[Option]) -> Callable[[Context, str], Value]:
    """``read(ctx, key)``: the plugin's option ``key`` parsed by its declaration (``Context.value``), so a
    plugin names its options once, in ``declared``."""
    found = opt.by_name(declared)

    def read(ctx: Context, key: str) -> Value:
        return ctx.value(plugin, found[key])

    return read


def base_qp(ctx: Context, default: int) -> int:
    """The base's QP clamped to 0..63 when the job knows it, else ``default`` (a plugin's ``qp`` option)."""
    return min(max(int(ctx.qp), 0), 63) if ctx.qp is not None else default
