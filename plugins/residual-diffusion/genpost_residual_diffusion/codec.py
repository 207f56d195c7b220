"""The ``residual-diffusion/1`` payload: one frame's quantised latent, entropy coded with ANS
(``constriction``) under a factorized zero-mean Laplace model whose scale per channel is sent (numpy +
constriction, no torch).

Layout (bytes)::

    0            version (1)
    1            qp: the QP the denoiser is conditioned on, 0..63
    2            step index into STEPS (the latent's quantisation step)
    3, 4         latent rows and cols, each mod 256 (a check that the payload fits the frame)
    5 .. 5+C     per latent channel a scale index 0..63: 0 = the channel is all zero and not coded,
                 k > 0 = Laplace scale SCALE0 * 2^((k-1)/4) (in quantisation steps)
    5+C ..       the ANS words (u32, little endian) of the coded channels' symbols, raster order, channel
                 after channel; present exactly when some channel is coded

Symbols are clipped to -MAX_SYMBOL..MAX_SYMBOL. The latent grid (rows, cols) follows from the frame
size (one cell per 8x8 luma); bytes 3 and 4 only check it. Anything else -- a wrong version, QP, step or scale
index, a grid that does not match the frame, a length that is not header + whole words, words that do not decode to exactly the coded symbols
(the ANS stack must end empty) -- raises ``PayloadError``.
"""

from __future__ import annotations

import numpy as np

from genpost import PayloadError

from .layout import LATENT

VERSION = 1
STEPS = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6)  # latent quantisation steps, finest first
MAX_SYMBOL = 31
SCALE0 = 0.05
SCALES = np.asarray([SCALE0 * 2.0 ** ((k - 1) / 4.0) for k in range(1, 64)])  # index k -> SCALES[k - 1]
HEADER = 5 + LATENT


def quantise(y: np.ndarray, step: int) -> np.ndarray:
    """(LATENT, rows, cols) float latent -> int32 symbols at STEPS[step]."""
    return np.clip(np.rint(y / STEPS[step]), -MAX_SYMBOL, MAX_SYMBOL).astype(np.int32)


def _laplace_bits(hist: np.ndarray) -> np.ndarray:
    """Estimated bits of a channel whose |symbol| histogram is ``hist`` (0..MAX_SYMBOL), per scale index."""
    v = np.arange(MAX_SYMBOL + 1)[None, :]
    b = SCALES[:, None]
    cdf = lambda x: 1.0 - 0.5 * np.exp(-x / b)  # noqa: E731 (x >= 0)
    p = np.where(v == 0, 1.0 - np.exp(-0.5 / b), cdf(v + 0.5) - cdf(v - 0.5))  # one signed value
    return (-np.log2(np.maximum(p, 1e-12)) * hist[None, :]).sum(1)


def _coder():
    import constriction

    return constriction, constriction.stream.model.QuantizedLaplace(-MAX_SYMBOL, MAX_SYMBOL)


def encode(qp: int, step: int, q: np.ndarray) -> bytes:
    """The payload for symbols ``q`` (LATENT, rows, cols) quantised at STEPS[step], conditioned on ``qp``."""
    if not (0 <= qp <= 63 and 0 <= step < len(STEPS) and q.shape[0] == LATENT and np.abs(q).max(initial=0) <= MAX_SYMBOL):
        raise ValueError("residual-diffusion/1: qp, step or latent out of range")
    indices, symbols, scales = [], [], []
    for ch in q:
        if not ch.any():
            indices.append(0)
            continue
        k = int(np.argmin(_laplace_bits(np.bincount(np.abs(ch).ravel(), minlength=MAX_SYMBOL + 1)))) + 1
        indices.append(k)
        symbols.append(ch.ravel())
        scales.append(np.full(ch.size, SCALES[k - 1]))
    out = bytes([VERSION, qp, step, q.shape[1] & 0xFF, q.shape[2] & 0xFF, *indices])
    if symbols:
        constriction, model = _coder()
        coder = constriction.stream.stack.AnsCoder()
        s = np.concatenate(symbols).astype(np.int32)
        coder.encode_reverse(s, model, np.zeros(s.size), np.concatenate(scales))
        out += coder.get_compressed().astype("<u4").tobytes()
    return out


def decode(payload: bytes, rows: int, cols: int) -> tuple[int, int, np.ndarray]:
    """(qp, step index, symbols (LATENT, rows, cols)) of a payload for a latent grid of rows x cols."""
    if len(payload) < HEADER or payload[0] != VERSION:
        raise PayloadError(f"residual-diffusion/1 payload must start with version {VERSION} and hold at least {HEADER} bytes")
    qp, step, indices = payload[1], payload[2], list(payload[5:HEADER])
    if qp > 63 or step >= len(STEPS) or max(indices) > len(SCALES):
        raise PayloadError("residual-diffusion/1 payload has its qp, step or a scale index out of range")
    if (payload[3], payload[4]) != (rows & 0xFF, cols & 0xFF):
        raise PayloadError("residual-diffusion/1 payload was coded for a latent grid of another frame size")
    words = payload[HEADER:]
    coded = [c for c, k in enumerate(indices) if k]
    if len(words) % 4 or bool(words) != bool(coded):
        raise PayloadError("residual-diffusion/1 payload: the coded data must be whole u32 words, present exactly when a channel is coded")
    q = np.zeros((LATENT, rows, cols), np.int32)
    if coded:
        constriction, model = _coder()
        n = rows * cols
        scales = np.concatenate([np.full(n, SCALES[indices[c] - 1]) for c in coded])
        try:
            coder = constriction.stream.stack.AnsCoder(np.frombuffer(words, "<u4").astype(np.uint32))
            symbols = coder.decode(model, np.zeros(scales.size), scales)
            ok = coder.is_empty()
        except (ValueError, RuntimeError, OverflowError) as exc:
            raise PayloadError(f"residual-diffusion/1 payload: bad entropy-coded data ({exc})") from None
        if not ok:
            raise PayloadError("residual-diffusion/1 payload: entropy-coded data does not end where the latent does")
        q[coded] = np.asarray(symbols, np.int32).reshape(len(coded), rows, cols)
    return qp, step, q
