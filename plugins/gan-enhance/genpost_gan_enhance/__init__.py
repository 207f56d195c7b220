"""genpost-gan-enhance: the ``gan-enhance`` post-processor (registered through the ``genpost`` entry point).

Importing this package imports numpy and genpost only; onnxruntime or torch load in ``setup``.
"""

from genpost import hookimpl

from .postprocessor import GanEnhance

api_version = 1
__version__ = GanEnhance.version
__all__ = ["GanEnhance", "register_postprocessors"]


@hookimpl
def register_postprocessors(register):
    register(GanEnhance)
