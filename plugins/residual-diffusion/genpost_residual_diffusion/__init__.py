"""genpost-residual-diffusion: the ``residual-diffusion`` post-processor (registered through the ``genpost``
entry point). Importing this package imports numpy and genpost only; onnxruntime or torch (and constriction,
for payloads) load on first use."""

from genpost import hookimpl

from .postprocessor import ResidualDiffusion

api_version = 1
__version__ = ResidualDiffusion.version
__all__ = ["ResidualDiffusion", "register_postprocessors"]


@hookimpl
def register_postprocessors(register):
    register(ResidualDiffusion)
