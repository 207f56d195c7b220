"""MSB-first bit I/O with Exp-Golomb codes, as H.274 / H.266 SEI syntax uses (u(n), ue(v), se(v), st(v))."""

from __future__ import annotations

from ..errors import GenpostError


class BitsError(GenpostError, ValueError):
    """A read past the end of the payload or a value that cannot be coded."""


class BitWriter:
    def __init__(self) -> None:
        self._bits: list[int] = []

    def u(self, value: int, n: int) -> None:
        if n < 0 or not 0 <= value < 1 << n:
            raise BitsError(f"{value} does not fit in {n} bits")
        self._bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def flag(self, value: bool) -> None:
        self._bits.append(1 if value else 0)

    def ue(self, value: int) -> None:
        if not 0 <= value < (1 << 32) - 1:
            raise BitsError(f"ue(v) value {value} out of range")
        code = value + 1
        n = code.bit_length()
        self.u(0, n - 1)
        self.u(code, n)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        while len(self._bits) % 8:
            self._bits.append(0)

    def string(self, text: str) -> None:
        """st(v): byte-aligned UTF-8 (ISO/IEC 10646) bytes then a null byte."""
        raw = text.encode("utf-8")
        if b"\x00" in raw:
            raise BitsError("st(v) strings cannot hold a null character")
        for b in raw + b"\x00":
            self.u(b, 8)

    @property
    def byte_aligned(self) -> bool:
        return len(self._bits) % 8 == 0

    def payload(self) -> bytes:
        """The SEI payload: when not byte aligned, payload_bit_equal_to_one then zero bits (as VTM writes)."""
        bits = list(self._bits)
        if len(bits) % 8:
            bits.append(1)
            bits += [0] * (-len(bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


class BitReader:
    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self.pos = 0  # in bits
        self.end = 8 * len(self._data)

    @property
    def bits_left(self) -> int:
        return self.end - self.pos

    def u(self, n: int) -> int:
        if n < 0 or n > self.bits_left:
            raise BitsError("read past the end of the SEI payload")
        v = 0
        for _ in range(n):
            v = (v << 1) | ((self._data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def flag(self) -> bool:
        return bool(self.u(1))

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise BitsError("ue(v) longer than 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def align_zero(self) -> None:
        while self.pos % 8:
            if self.u(1):
                raise BitsError("alignment bit not zero")

    def string(self, limit: int = 4096) -> str:
        out = bytearray()
        while (b := self.u(8)) != 0:
            out.append(b)
            if len(out) > limit:
                raise BitsError("st(v) string too long")
        return out.decode("utf-8", errors="replace")

    def more_data(self) -> bool:
        """True while bits other than the payload's trailing 1-then-zeros remain (more_data_in_payload)."""
        stripped = self._data.rstrip(b"\x00")
        if not stripped:
            return False
        last = stripped[-1]
        stop = 8 * len(stripped) - (last & -last).bit_length()  # index of the last 1 bit
        return self.pos < stop
