"""genpost-rectified-flow: the ``rectified-flow`` post-processor (registered through the ``genpost`` entry point).

Importing this package imports numpy and genpost only; onnxruntime or torch load in ``setup``.
"""

from genpost.learned.plugin import register_hook

from .postprocessor import RectifiedFlow

__all__ = ["RectifiedFlow", "register_postprocessors"]
api_version = 1
__version__ = RectifiedFlow.version
register_postprocessors = register_hook(RectifiedFlow)
