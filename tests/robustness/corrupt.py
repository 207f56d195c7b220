"""Damage real files the ways storage and transmission do: flipped bits inside coded pictures (container
intact), flipped bytes anywhere, truncation, garbage; and y4m files with broken headers or a short tail."""

from __future__ import annotations

import random
from pathlib import Path

import av


def flip_in_packets(src: Path, dst: Path, flips: int, seed: int) -> int:
    """Copy the video of ``src`` to ``dst`` (same container type) with ``flips`` random bit flips inside
    the payload of video packets after the first; returns how many packets were hit."""
    rng = random.Random(seed)
    with av.open(str(src)) as inp:
        video = inp.streams.video[0]
        packets = [p for p in inp.demux(video) if p.size]
        data = [bytearray(bytes(p)) for p in packets]
        hit = set()
        for _ in range(flips):
            i = rng.randrange(1, len(data))
            j = rng.randrange(len(data[i]))
            data[i][j] ^= 1 << rng.randrange(8)
            hit.add(i)
        with av.open(str(dst), "w") as out:
            stream = out.add_stream_from_template(video)
            for p, d in zip(packets, data):
                q = av.Packet(bytes(d))
                q.pts, q.dts, q.time_base, q.duration, q.is_keyframe = p.pts, p.dts, p.time_base, p.duration, p.is_keyframe
                q.stream = stream
                out.mux(q)
    return len(hit)


def flip_bytes(src: Path, dst: Path, count: int, seed: int, start: float = 0.3) -> None:
    """``count`` random bytes of the file (past ``start`` of its length) XORed with random values."""
    rng = random.Random(seed)
    data = bytearray(src.read_bytes())
    for _ in range(count):
        i = rng.randrange(int(len(data) * start), len(data))
        data[i] ^= rng.randrange(1, 256)
    dst.write_bytes(bytes(data))


def truncate(src: Path, dst: Path, fraction: float) -> None:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])


def garbage(dst: Path, size: int, seed: int) -> None:
    dst.write_bytes(random.Random(seed).randbytes(size))


def y4m(dst: Path, header: bytes, body: bytes = b"FRAME\n" + bytes(64)) -> None:
    dst.write_bytes(header + b"\n" + body)


def y4m_short_tail(src: Path, dst: Path, missing: int) -> None:
    """``src`` with its last frame's final ``missing`` bytes cut off."""
    data = src.read_bytes()
    dst.write_bytes(data[:-missing])


def rewrite_packets(src: Path, dst: Path, change) -> None:
    """Copy the video of ``src`` to ``dst`` with each packet's bytes replaced by ``change(i, data)``."""
    with av.open(str(src)) as inp:
        video = inp.streams.video[0]
        with av.open(str(dst), "w") as out:
            stream = out.add_stream_from_template(video)
            for i, p in enumerate(q for q in inp.demux(video) if q.size):
                q = av.Packet(change(i, bytes(p)))
                q.pts, q.dts, q.time_base, q.duration, q.is_keyframe = p.pts, p.dts, p.time_base, p.duration, p.is_keyframe
                q.stream = stream
                out.mux(q)


def packets(src: Path) -> list[bytes]:
    with av.open(str(src)) as inp:
        return [bytes(p) for p in inp.demux(inp.streams.video[0]) if p.size]


def mutations(max_ops: int):
    """A hypothesis strategy of 1..max_ops byte-level edits for ``mutate``."""
    from hypothesis import strategies as st

    ops = st.sampled_from(["flip", "set", "delete", "insert", "duplicate", "truncate"])
    return st.lists(st.tuples(ops, st.floats(0, 1, allow_nan=False), st.integers(0, 255)), min_size=1, max_size=max_ops)


def mutate(data: bytes, ops) -> bytes:
    """Apply (op, where 0..1, value) edits to a copy of ``data``: the damage a packet or file can take."""
    b = bytearray(data)
    for op, where, value in ops:
        i = min(int(where * len(b)), max(len(b) - 1, 0))
        if op == "flip" and b:
            b[i] ^= 1 << (value % 8)
        elif op == "set" and b:
            b[i] = value
        elif op == "delete":
            del b[i : i + 1 + value % 32]
        elif op == "insert":
            b[i:i] = bytes([value]) * (1 + value % 8)
        elif op == "duplicate":
            b[i:i] = b[i : i + 1 + value]
        elif op == "truncate":
            del b[i:]
    return bytes(b)
