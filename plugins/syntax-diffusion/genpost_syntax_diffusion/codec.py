"""The ``syntax-diffusion/1`` payload (pure Python): the QP the encoder knew and an optional syntax vector.

Layout::

    byte 0  version (1)
    byte 1  qp: the base's QP the denoiser is conditioned on, 0..63
    byte 2  n: the number of syntax values, 0 (QP only) or K (16)
    byte 3  luma strength in eighths, 0..8
    byte 4  U strength << 4 | V strength, each 0..8
            per plane: output = decoded + strength / 8 * (restored - decoded) (0 = keep the base plane,
            8 = the network's restoration)
    then    n signed Exp-Golomb codes (H.264/HEVC se(v)), MSB first, each value in -ZMAX..ZMAX (15),
            zero bits padding the last byte

A payload must be exactly as long as its codes: anything else (a wrong version, a QP over 63, another n,
a value out of range, a code running past the end, non-zero padding, trailing bytes) is a PayloadError.
"""

from __future__ import annotations

from genpost import PayloadError

VERSION = 1
K = 16  # must equal model.K (not imported: the model module imports torch)
ZMAX = 15
FULL = 8  # strength unit: eighths


def _ue_bits(k: int) -> str:
    code = bin(k + 1)[2:]
    return "0" * (len(code) - 1) + code


def encode(qp: int, values: tuple[int, ...] | None, strengths: tuple[int, int, int] = (FULL,) * 3) -> bytes:
    values = tuple(values or ())
    bad = not 0 <= qp <= 63 or len(strengths) != 3 or any(not 0 <= g <= FULL for g in strengths)
    if bad or len(values) not in (0, K) or any(not -ZMAX <= v <= ZMAX for v in values):
        raise ValueError(f"syntax-diffusion/1: qp {qp}, strengths {strengths} or values {values} out of range")
    bits = "".join(_ue_bits(2 * v - 1 if v > 0 else -2 * v) for v in values)
    bits += "0" * (-len(bits) % 8)
    return bytes([VERSION, qp, len(values), strengths[0], strengths[1] << 4 | strengths[2]]) + int(bits or "0", 2).to_bytes(len(bits) // 8, "big")


def decode(payload: bytes) -> tuple[int, tuple[int, ...], tuple[int, int, int]]:
    """(qp, values, (Y, U, V) strengths); PayloadError for anything that is not exactly a valid payload."""
    if len(payload) < 5 or payload[0] != VERSION:
        raise PayloadError(f"syntax-diffusion/1 payload must start with version {VERSION} and hold at least 5 bytes")
    qp, n, strengths = payload[1], payload[2], (payload[3], payload[4] >> 4, payload[4] & 15)
    if qp > 63 or n not in (0, K) or max(strengths) > FULL:
        raise PayloadError(f"syntax-diffusion/1 payload has qp {qp}, vector length {n} or strengths {strengths} out of range")
    bits = "".join(f"{b:08b}" for b in payload[5:])
    pos, values = 0, []
    for _ in range(n):
        zeros = 0
        while pos < len(bits) and bits[pos] == "0":
            zeros, pos = zeros + 1, pos + 1
        if zeros > 5 or pos + zeros >= len(bits):  # |v| <= 15 needs at most 5 leading zeros
            raise PayloadError("syntax-diffusion/1 payload: a syntax value runs past the end or out of range")
        k = int(bits[pos : pos + zeros + 1], 2) - 1
        pos += zeros + 1
        v = (k + 1) // 2 if k % 2 else -(k // 2)
        if not -ZMAX <= v <= ZMAX:
            raise PayloadError(f"syntax-diffusion/1 payload: syntax value {v} out of range")
        values.append(v)
    if len(bits) - pos >= 8 or "1" in bits[pos:]:
        raise PayloadError("syntax-diffusion/1 payload has trailing bytes or non-zero padding")
    return qp, tuple(values), strengths
