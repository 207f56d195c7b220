"""Content adaptation: a weight update for a plugin's conv network, chosen by the encoder for the content
of one period (keyframe to keyframe), sent once as side info and applied to the *shipped* weights.

Adaptable parameter groups (``GROUPS``) of a network made of 3x3 convs, the last one the output layer:

- ``bias``: an additive delta on every conv's bias;
- ``scale``: a per-output-channel multiplier ``1 + s`` on every conv's weights;
- ``gain``: one output gain per plane (Y, U, V) on the output layer, ``1 + q/64`` for q in -64..64, so
  ``gain 0`` (q = -64: the plane is left as decoded) is always reachable;
- ``tail``: a full delta on the output layer's weights (the larger group).

``apply`` is plain float32 numpy, the same call at the encoder (to measure D) and the decoder, so both
run identical weights. The update payload (docs/bitstream.md, "content-adaptive updates")::

    0  version u8 (1)
    1  weights tag u16 BE: the first two bytes of the sha256 of the weights the update applies to
    3  group mask u8: bit 0 bias, 1 scale, 2 gain, 3 tail
    4  per coded group among bias, scale, tail (in that order): step exponent u8 (step = 2**-e),
       Laplace scale float16 BE (in steps)
    .. gain present: 3 x int8 (Y, U, V)
    .. one rANS stream (``genpost.learned.entropy``) of the coded groups' symbols, u32 LE words
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import GenpostError
from . import entropy

VERSION = 1
GROUPS = ("bias", "scale", "gain", "tail")
CODED = ("bias", "scale", "tail")  # groups sent as entropy-coded symbols (gain is 3 plain bytes)
MODES = {"off": (), "small": ("bias", "scale", "gain"), "full": ("bias", "scale", "gain", "tail")}
GAIN_STEP = 64  # gain = 1 + q / 64
MAX_UPDATE_BYTES = 256 << 10  # a reader refuses larger update payloads before decoding them
_HEAD = struct.Struct(">BHB")
_GROUP = struct.Struct(">Be")


class UpdateError(GenpostError, ValueError):
    """An update payload that cannot be used (damaged, foreign, for other weights): the period falls back."""


@dataclass(frozen=True)
class AdaptSpec:
    """What a plugin tells the toolkit about its network.

    ``convs``: parameter-name prefixes of its convs in forward order (``NAME.weight`` / ``NAME.bias``);
    the last is the output layer. ``out_planes``: the plane (0 Y, 1 U, 2 V) each output channel of that
    layer writes, for the per-plane gains."""

    convs: tuple[str, ...]
    out_planes: tuple[int, ...]

    @property
    def tail(self) -> str:
        return self.convs[-1]

    def sizes(self, state: dict[str, np.ndarray]) -> dict[str, int]:
        """Symbols per group for these weights."""
        channels = sum(int(state[f"{c}.bias"].size) for c in self.convs)
        return {"bias": channels, "scale": channels, "gain": 3, "tail": int(state[f"{self.tail}.weight"].size)}


@dataclass
class Update:
    """Quantised deltas: int32 symbols per group and, for coded groups, the step exponent."""

    symbols: dict[str, np.ndarray] = field(default_factory=dict)
    exponents: dict[str, int] = field(default_factory=dict)

    def value(self, group: str) -> np.ndarray:
        q = self.symbols[group].astype(np.float32)
        if group == "gain":
            return np.float32(1.0) + q / np.float32(GAIN_STEP)
        return q * np.float32(2.0 ** -self.exponents[group])

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(g for g in GROUPS if g in self.symbols)


def quantize(deltas: dict[str, np.ndarray], exponents: dict[str, int]) -> Update:
    """Float deltas (gain given as the gain itself) -> an Update with steps 2**-e."""
    up = Update()
    for group, d in deltas.items():
        if group == "gain":
            up.symbols[group] = np.clip(np.rint((np.asarray(d) - 1.0) * GAIN_STEP), -GAIN_STEP, GAIN_STEP).astype(np.int32)
        else:
            e = exponents[group]
            up.exponents[group] = e
            q = np.rint(np.asarray(d, np.float64) * 2.0**e)
            up.symbols[group] = np.clip(q, -entropy.MAX_SYMBOL, entropy.MAX_SYMBOL).astype(np.int32).ravel()
    return up


def apply(state: dict[str, np.ndarray], spec: AdaptSpec, update: Update | None) -> dict[str, np.ndarray]:
    """The shipped weights with ``update`` applied (float32; the same arithmetic everywhere)."""
    out = dict(state)
    if update is None or not update.symbols:
        return out
    bias = update.value("bias") if "bias" in update.symbols else None
    scale = update.value("scale") if "scale" in update.symbols else None
    offset = 0
    for name in spec.convs:
        w = np.asarray(state[f"{name}.weight"], np.float32)
        b = np.asarray(state[f"{name}.bias"], np.float32)
        n = b.size
        if scale is not None:
            w = w * (np.float32(1.0) + scale[offset : offset + n])[:, None, None, None]
        if bias is not None:
            b = b + bias[offset : offset + n]
        offset += n
        if name == spec.tail:
            if "tail" in update.symbols:
                w = w + update.value("tail").reshape(w.shape)
            if "gain" in update.symbols:
                g = update.value("gain")[np.asarray(spec.out_planes)]
                w, b = w * g[:, None, None, None], b * g
        out[f"{name}.weight"], out[f"{name}.bias"] = w.astype(np.float32), b.astype(np.float32)
    return out


def weights_tag(sha256_hex: str) -> int:
    """The u16 an update names its base weights by."""
    return int(sha256_hex[:4], 16)


def encode_update(update: Update, tag: int) -> bytes:
    mask = sum(1 << GROUPS.index(g) for g in update.groups)
    out = [_HEAD.pack(VERSION, tag, mask)]
    symbols, scales = [], []
    for group in CODED:
        if group in update.symbols:
            s = update.symbols[group]
            b = entropy.laplace_scale(s)
            out.append(_GROUP.pack(update.exponents[group], b))
            symbols.append(s)
            scales.append(b)
    if "gain" in update.symbols:
        out.append(update.symbols["gain"].astype(np.int8).tobytes())
    streams = [entropy.encode(s, b) for s, b in zip(symbols, scales)]
    counts = b"".join(struct.pack(">H", len(w) // 4) for w in streams[:-1])  # so the streams can be split
    return b"".join(out) + counts + b"".join(streams)


def decode_update(payload: bytes, spec: AdaptSpec, sizes: dict[str, int], tag: int) -> Update:
    """The Update in ``payload``; UpdateError for anything that is not exactly a valid one for these weights."""
    if len(payload) > MAX_UPDATE_BYTES:
        raise UpdateError(f"update payload of {len(payload)} bytes is over the {MAX_UPDATE_BYTES}-byte cap")
    if len(payload) < _HEAD.size or payload[0] != VERSION:
        raise UpdateError(f"update payload must start with version {VERSION}")
    _, got_tag, mask = _HEAD.unpack_from(payload)
    if got_tag != tag:
        raise UpdateError("update payload was made for other weights")
    if mask == 0 or mask >> len(GROUPS):
        raise UpdateError(f"update payload has a bad group mask {mask:#x}")
    groups = [g for g in GROUPS if mask >> GROUPS.index(g) & 1]
    coded = [g for g in CODED if g in groups]
    pos, up = _HEAD.size, Update()
    params = []
    try:
        for group in coded:
            e, b = _GROUP.unpack_from(payload, pos)
            pos += _GROUP.size
            if not 0 <= e <= 24 or not np.isfinite(b) or b <= 0:
                raise UpdateError(f"update payload has a bad step or scale for {group}")
            up.exponents[group] = e
            params.append((group, np.float16(b)))
        if "gain" in groups:
            if len(payload) < pos + 3:
                raise UpdateError("update payload is truncated in its gains")
            gain = np.frombuffer(payload, np.int8, 3, pos).astype(np.int32)
            if np.abs(gain).max() > GAIN_STEP:
                raise UpdateError("update payload has a gain out of range")
            up.symbols["gain"] = gain
            pos += 3
        counts = list(struct.unpack_from(f">{max(len(coded) - 1, 0)}H", payload, pos))
        pos += 2 * len(counts)
    except struct.error:
        raise UpdateError("update payload is truncated") from None
    words = payload[pos:]
    starts = np.cumsum([0, *[4 * c for c in counts]])
    if starts[-1] > len(words):
        raise UpdateError("update payload is truncated")
    bounds = [*starts, len(words)]
    try:
        for i, (group, b) in enumerate(params):
            up.symbols[group] = entropy.decode(words[bounds[i] : bounds[i + 1]], sizes[group], b)
    except ValueError as exc:
        raise UpdateError(f"update payload for {group}: {exc}") from None
    return up
