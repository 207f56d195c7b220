"""genpost-rectified-flow: the ``rectified-flow`` post-processor (registered through the ``genpost`` entry point).

Importing this package imports numpy and genpost only; onnxruntime or torch load in ``setup``.
"""

from genpost import hookimpl

from .postprocessor import RectifiedFlow

api_version = 1
__version__ = RectifiedFlow.version
__all__ = ["RectifiedFlow", "register_postprocessors"]


@hookimpl
def register_postprocessors(register):
    register(RectifiedFlow)
