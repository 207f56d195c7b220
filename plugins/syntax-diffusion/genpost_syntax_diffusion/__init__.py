"""genpost-syntax-diffusion: the ``syntax-diffusion`` post-processor (registered through the ``genpost``
entry point). Importing this package imports numpy and genpost only; onnxruntime or torch load in ``setup``.
"""

from genpost import hookimpl

from .postprocessor import SyntaxDiffusion

api_version = 1
__version__ = SyntaxDiffusion.version
__all__ = ["SyntaxDiffusion", "register_postprocessors"]


@hookimpl
def register_postprocessors(register):
    register(SyntaxDiffusion)
