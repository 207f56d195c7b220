"""genpost: generative post-processing of standard HEVC/VVC streams with side information."""

__version__ = "0.1.0"
__api_version__ = 1

from .hookspecs import hookimpl
from .options import Option
from .postprocessor import Context, PayloadError, PostProcessor, WeightsFile
from .types import ColorInfo, Frame, StreamInfo

__all__ = [
    "Context",
    "ColorInfo",
    "Frame",
    "Option",
    "PayloadError",
    "PostProcessor",
    "StreamInfo",
    "WeightsFile",
    "hookimpl",
    "__api_version__",
    "__version__",
]
