"""The ``rectified-flow/1`` payload: sampler settings for one frame, and optionally which blocks use them
(pure Python + numpy).

Layout (bytes)::

    0  version (1)
    1  qp: the QP the velocity network is conditioned on, 0..63
    2  settings, MSB first: steps - 1 (2 bits, 1..4 Euler steps) | start-time index (2 bits, into T0S)
       | noise index (2 bits, into SIGMAS) | guidance flag (1 bit) | block-map flag (1 bit)
    .. seed (u8), present only when the noise index is not 0
    .. guidance, present only when its flag is set: three i8, the Y, U and V correction in quarter
       samples at 8 bits (1/1020 of the sample range, so the same at 10 bits)
    .. block map, present only when its flag is set: one bit per 64x64 luma block in raster order, MSB
       first, 1 = restored, 0 = keep the base; zero bits pad the last byte

Without a map every block is restored. A payload must be exactly as long as its flags and the frame
size say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genpost import PayloadError

VERSION = 1
BLOCK = 64  # luma samples per map block side
T0S = (0.0, 0.25, 0.5, 0.75)  # start times: the sampler begins part-way along the flow
SIGMAS = (0.0, 0.01, 0.02, 0.04)  # start noise (full range = 1): start state = d + (1 - t0) sigma eps
GUIDANCE_UNIT = 1.0 / 1020.0  # a quarter of an 8-bit sample, as a fraction of the sample range


@dataclass(frozen=True)
class Settings:
    qp: int = 32
    steps: int = 1
    t0: int = 0  # index into T0S
    sigma: int = 0  # index into SIGMAS
    seed: int = 0  # 0..255, used only when sigma > 0
    guidance: tuple[int, int, int] | None = None  # Y, U, V in GUIDANCE_UNIT, each -128..127
    blocks: tuple[bool, ...] | None = None  # per 64x64 block (raster order): restored?

    def key(self) -> tuple:
        """What determines the sampled frame, before guidance and map (the seed matters only with noise)."""
        return (self.qp, self.steps, self.t0, self.sigma, self.seed if self.sigma else 0)


def grid(width: int, height: int) -> tuple[int, int]:
    """(rows, cols) of the block map for a luma size."""
    return -(-height // BLOCK), -(-width // BLOCK)


def encode(s: Settings) -> bytes:
    ok = 0 <= s.qp <= 63 and 1 <= s.steps <= 4 and 0 <= s.t0 < len(T0S) and 0 <= s.sigma < len(SIGMAS) and 0 <= s.seed <= 255
    if not ok or (s.guidance is not None and any(not -128 <= g <= 127 for g in s.guidance)):
        raise ValueError(f"rectified-flow/1 settings out of range: {s}")
    flags = (s.steps - 1) << 6 | s.t0 << 4 | s.sigma << 2 | (s.guidance is not None) << 1 | (s.blocks is not None)
    out = bytearray([VERSION, s.qp, flags])
    if s.sigma:
        out.append(s.seed)
    if s.guidance is not None:
        out += bytes(g & 0xFF for g in s.guidance)
    if s.blocks is not None:
        out += np.packbits(np.asarray(s.blocks, np.uint8)).tobytes()
    return bytes(out)


def decode(payload: bytes, rows: int, cols: int) -> Settings:
    """The settings for a frame of ``rows`` x ``cols`` blocks; PayloadError for anything that is not
    exactly a valid payload."""
    if len(payload) < 3 or payload[0] != VERSION:
        raise PayloadError(f"rectified-flow/1 payload must start with version {VERSION} and hold at least 3 bytes")
    qp, flags = payload[1], payload[2]
    if qp > 63:
        raise PayloadError(f"rectified-flow/1 payload has qp {qp} out of range")
    steps, t0, sigma, guided, mapped = (flags >> 6) + 1, (flags >> 4) & 3, (flags >> 2) & 3, bool(flags & 2), bool(flags & 1)
    pos = 3 + (sigma > 0)
    map_bytes = -(-rows * cols // 8) if mapped else 0
    expected = pos + 3 * guided + map_bytes
    if len(payload) != expected:
        raise PayloadError(f"rectified-flow/1 payload must be {expected} bytes for its flags and frame size, not {len(payload)}")
    seed = payload[3] if sigma else 0
    guidance = blocks = None
    if guided:
        guidance = tuple(b - 256 if b > 127 else b for b in payload[pos : pos + 3])
        pos += 3
    if mapped:
        bits = np.unpackbits(np.frombuffer(payload, np.uint8, offset=pos))
        if bits[rows * cols :].any():
            raise PayloadError("rectified-flow/1 block map has non-zero padding (wrong frame size?)")
        blocks = tuple(bool(b) for b in bits[: rows * cols])
    return Settings(qp, steps, t0, sigma, seed, guidance, blocks)
