"""genpost: generative post-processing of standard HEVC/VVC streams with side information.

The names here are the plugin API: the ``PostProcessor`` base and what it is handed, options, errors, and
``BitReader`` / ``BitWriter``, the bit I/O of genpost's own side info, for payloads packed in bits.
"""

__version__ = "0.1.0"
__api_version__ = 1

from .hookspecs import hookimpl
from .options import Option
from .postprocessor import Context, PayloadError, PostProcessor, WeightsFile
from .sideinfo.bits import BitReader, BitsError, BitWriter, MalformedBits
from .types import ColorInfo, Frame, StreamInfo

__all__ = [
    "BitReader",
    "BitWriter",
    "BitsError",
    "Context",
    "ColorInfo",
    "Frame",
    "MalformedBits",
    "Option",
    "PayloadError",
    "PostProcessor",
    "StreamInfo",
    "WeightsFile",
    "hookimpl",
    "__api_version__",
    "__version__",
]
