"""genpost-gan-enhance: the ``gan-enhance`` post-processor (registered through the ``genpost`` entry point).

Importing this package imports numpy and genpost only; onnxruntime or torch load in ``setup``.
"""

from genpost.learned.plugin import register_hook

from .postprocessor import GanEnhance

__all__ = ["GanEnhance", "register_postprocessors"]
api_version = 1
__version__ = GanEnhance.version
register_postprocessors = register_hook(GanEnhance)
