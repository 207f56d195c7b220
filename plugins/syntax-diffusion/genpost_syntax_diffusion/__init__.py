"""genpost-syntax-diffusion: the ``syntax-diffusion`` post-processor (registered through the ``genpost``
entry point). Importing this package imports numpy and genpost only; onnxruntime or torch load in ``setup``.
"""

from genpost.learned.plugin import register_hook

from .postprocessor import SyntaxDiffusion

__all__ = ["SyntaxDiffusion", "register_postprocessors"]
api_version = 1
__version__ = SyntaxDiffusion.version
register_postprocessors = register_hook(SyntaxDiffusion)
