"""genpost-residual-diffusion: the ``residual-diffusion`` post-processor (registered through the ``genpost``
entry point). Importing this package imports numpy and genpost only; onnxruntime or torch (and constriction,
for payloads) load on first use."""

from genpost.learned.plugin import register_hook

from .postprocessor import ResidualDiffusion

__all__ = ["ResidualDiffusion", "register_postprocessors"]
api_version = 1
__version__ = ResidualDiffusion.version
register_postprocessors = register_hook(ResidualDiffusion)
