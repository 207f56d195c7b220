"""genpost_probe: a small real post-processor for the robustness suite, found through a real entry point.

``analyze`` sends, for every frame, its index and the source-minus-base mean luma (5 bytes); ``restore``
smooths luma vertically and adds that mean back. So every frame has a record, and a record that lands on
the wrong frame is caught (PayloadError) instead of being applied.

Fault hooks for tests (environment, comma-separated frame indices):
GENPOST_PROBE_KILL_AT (SIGKILL this process in restore), GENPOST_PROBE_ANALYZE_KILL_AT (in analyze),
GENPOST_PROBE_RAISE_AT (RuntimeError in restore),
GENPOST_PROBE_ANALYZE_RAISE_AT (RuntimeError in analyze), GENPOST_PROBE_BAD_SHAPE_AT (returns a cropped
frame), GENPOST_PROBE_SETUP_RAISE (setup fails).
"""

from __future__ import annotations

import os
import signal
import struct

import numpy as np

from genpost import PayloadError, PostProcessor, hookimpl


def _at(variable: str, index: int) -> bool:
    return str(index) in os.environ.get(variable, "").split(",")


class Probe(PostProcessor):
    name = "probe"
    version = "1.0"
    side_info = "probe/1"
    description = "robustness-suite probe: mean-luma correction with fault hooks"

    def setup(self, device: str = "cpu") -> None:
        if os.environ.get("GENPOST_PROBE_SETUP_RAISE"):
            raise OSError("probe could not find its model")

    def analyze(self, source, decoded, ctx) -> bytes:
        if _at("GENPOST_PROBE_ANALYZE_KILL_AT", decoded.index):
            os.kill(os.getpid(), signal.SIGKILL)
        if _at("GENPOST_PROBE_ANALYZE_RAISE_AT", decoded.index):
            raise RuntimeError(f"probe analyze exploded on frame {decoded.index}")
        delta = int(np.clip(np.rint(source.y.mean() - decoded.y.mean()), -127, 127))
        return struct.pack(">Ib", decoded.index, delta)

    def restore(self, decoded, payload, ctx):
        i = decoded.index
        if _at("GENPOST_PROBE_KILL_AT", i):
            os.kill(os.getpid(), signal.SIGKILL)
        if _at("GENPOST_PROBE_RAISE_AT", i):
            raise RuntimeError(f"probe exploded on frame {i}")
        if _at("GENPOST_PROBE_BAD_SHAPE_AT", i):
            return decoded.with_planes(decoded.y[:-2], decoded.u, decoded.v)
        if payload is None:
            return decoded
        if len(payload) != 5:
            raise PayloadError("a probe payload is 5 bytes")
        index, delta = struct.unpack(">Ib", payload)
        if index != i:
            raise PayloadError(f"payload for frame {index} reached frame {i}")
        y = decoded.y.astype(np.int32)
        y[1:-1] = (y[:-2] + 2 * y[1:-1] + y[2:] + 2) >> 2
        y = np.clip(y + delta, 0, decoded.max_value).astype(decoded.y.dtype)
        return decoded.with_planes(y, decoded.u, decoded.v)


@hookimpl
def register_postprocessors(register):
    register(Probe)
