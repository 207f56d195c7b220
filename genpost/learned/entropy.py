"""One entropy coder for integer symbols: rANS (``constriction``) under a zero-mean quantised Laplace
whose scale is sent as float16. Used for content-adaptive weight updates; any plugin may use it for
its own integer payloads.

``encode`` -> (scale as float16 bytes, u32 words); ``decode`` checks that the words end exactly where
the symbols do, so damaged or foreign data is refused (ValueError), never misread silently.
"""

from __future__ import annotations

import numpy as np

MAX_SYMBOL = 1 << 15  # symbols are clipped to +-MAX_SYMBOL before coding
MIN_SCALE = 0.05


def laplace_scale(symbols: np.ndarray) -> np.float16:
    """The maximum-likelihood Laplace scale (mean |symbol|), floored, as the float16 that is sent."""
    b = float(np.abs(symbols).mean()) if symbols.size else MIN_SCALE
    return np.float16(max(b, MIN_SCALE))


def _model():
    import constriction

    return constriction.stream.model.QuantizedLaplace(-MAX_SYMBOL, MAX_SYMBOL + 1)


def encode(symbols: np.ndarray, scale: np.float16) -> bytes:
    """u32 little-endian ANS words for ``symbols`` (int, |s| <= MAX_SYMBOL) under Laplace(0, ``scale``)."""
    import constriction

    s = np.asarray(symbols, np.int32).ravel()
    if s.size == 0:
        return b""
    if np.abs(s).max() > MAX_SYMBOL:
        raise ValueError(f"symbol magnitude over {MAX_SYMBOL}")
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(s, _model(), np.zeros(s.size), np.full(s.size, float(scale)))
    return coder.get_compressed().astype("<u4").tobytes()


def decode(words: bytes, count: int, scale: np.float16) -> np.ndarray:
    """``count`` int32 symbols from ``words``; ValueError unless the data decodes and ends exactly there."""
    import constriction

    if count == 0:
        if words:
            raise ValueError("coded data where no symbols are expected")
        return np.zeros(0, np.int32)
    if len(words) % 4 or not words:
        raise ValueError("coded data must be whole u32 words")
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("bad Laplace scale")
    try:
        coder = constriction.stream.stack.AnsCoder(np.frombuffer(words, "<u4").astype(np.uint32))
        out = coder.decode(_model(), np.zeros(count), np.full(count, float(scale)))
        ok = coder.is_empty()
    except (ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(f"bad entropy-coded data ({exc})") from None
    if not ok:
        raise ValueError("entropy-coded data does not end where the symbols do")
    return np.asarray(out, np.int32)


def bits(symbols: np.ndarray, scale: float) -> float:
    """Ideal code length in bits of ``symbols`` under Laplace(0, scale) (for RD estimates and training)."""
    s = np.abs(np.asarray(symbols, np.float64).ravel())
    b = max(float(scale), MIN_SCALE)
    cdf = lambda x: 1.0 - 0.5 * np.exp(-x / b)  # noqa: E731 (x >= 0)
    p = np.where(s == 0, 1.0 - np.exp(-0.5 / b), cdf(s + 0.5) - cdf(s - 0.5))
    return float(-np.log2(np.maximum(p, 1e-300)).sum())
