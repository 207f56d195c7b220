"""The ``register_postprocessors`` hook of a plugin package, made by one call instead of the same
boilerplate in every ``__init__.py``:

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

from ..hookspecs import hookimpl


def register_hook(*classes):
    """A ``register_postprocessors`` hook implementation that registers ``classes``, in order."""

    @hookimpl
    def register_postprocessors(register):
        for cls in classes:
            register(cls)

    return register_postprocessors
