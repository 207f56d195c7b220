"""genpost's own post-processors, registered through the same entry point as any third-party plugin."""

from ..hookspecs import hookimpl


@hookimpl
def register_postprocessors(register):
    from .wiener import WienerFilter

    register(WienerFilter)
