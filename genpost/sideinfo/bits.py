"""MSB-first bit I/O with Exp-Golomb codes: the one bit reader and writer of genpost and its plugins.

It speaks the H.274 / H.266 SEI syntax (u(n), ue(v), se(v), st(v)) and the k-th order Exp-Golomb codes
plugins use for coefficients. The writer packs whole bytes into a bytearray and the reader cuts each read
from the bytes it spans, so payloads of many thousand bits cost time linear in their length.
"""

from __future__ import annotations

from ..errors import GenpostError, PayloadError

MAX_UE_ZEROS = 31  # ue(v) is at most 32 bits long (H.274); a longer prefix is damage, not data


class BitsError(GenpostError, ValueError):
    """A value the writer cannot code; the base of ``MalformedBits``."""


class MalformedBits(BitsError, PayloadError):
    """Bits that do not parse (a read past the end, an over-long code). A ``PayloadError``, so a plugin's
    reader that lets it escape reports a damaged payload (a fallback), never a crash."""


class BitWriter:
    """Bits appended MSB first: whole bytes in a bytearray, the last 0..7 bits in an int."""

    def __init__(self) -> None:
        self._bytes = bytearray()
        self._tail = 0  # the bits after the last whole byte
        self._tail_bits = 0

    def __len__(self) -> int:
        """Bits written so far."""
        return 8 * len(self._bytes) + self._tail_bits

    @property
    def bits(self) -> str:
        """The bits written so far as '0' and '1' characters (for tests and debugging)."""
        whole = "".join(f"{b:08b}" for b in self._bytes)
        return whole + (f"{self._tail:0{self._tail_bits}b}" if self._tail_bits else "")

    def u(self, value: int, n: int) -> None:
        value = int(value)  # numpy integers and bools too
        if n < 0 or not 0 <= value < 1 << n:
            raise BitsError(f"{value} does not fit in {n} bits")
        acc, count = (self._tail << n) | value, self._tail_bits + n
        whole, rest = count >> 3, count & 7
        if whole:
            self._bytes += (acc >> rest).to_bytes(whole, "big")
            acc &= (1 << rest) - 1
        self._tail, self._tail_bits = acc, rest

    def flag(self, value: bool) -> None:
        self.u(1 if value else 0, 1)

    def ue(self, value: int, k: int = 0) -> None:
        """Exp-Golomb of order k: the order-0 code of ``value >> k``, then the k low bits as they are."""
        value = int(value)
        if not 0 <= value >> k < (1 << (MAX_UE_ZEROS + 1)) - 1:
            raise BitsError(f"ue(v) value {value} out of range")
        code = (value >> k) + 1
        n = code.bit_length()
        self.u(0, n - 1)
        self.u(code, n)
        self.u(value & ((1 << k) - 1), k)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def append(self, other: BitWriter) -> None:
        """Every bit ``other`` holds, after ours (a part coded aside, e.g. to compare its length)."""
        if other._bytes:
            self.u(int.from_bytes(other._bytes, "big"), 8 * len(other._bytes))
        self.u(other._tail, other._tail_bits)

    def align_zero(self) -> None:
        self.u(0, -self._tail_bits % 8)

    def string(self, text: str) -> None:
        """st(v): byte-aligned UTF-8 (ISO/IEC 10646) bytes then a null byte."""
        raw = text.encode("utf-8")
        if b"\x00" in raw:
            raise BitsError("st(v) strings cannot hold a null character")
        for b in raw + b"\x00":
            self.u(b, 8)

    @property
    def byte_aligned(self) -> bool:
        return self._tail_bits == 0

    def tobytes(self) -> bytes:
        """The bits, zero bits padding the last byte."""
        if not self._tail_bits:
            return bytes(self._bytes)
        pad = 8 - self._tail_bits
        return bytes(self._bytes) + bytes([self._tail << pad])

    def payload(self) -> bytes:
        """The SEI payload: when not byte aligned, payload_bit_equal_to_one then zero bits (as VTM writes)."""
        if not self._tail_bits:
            return bytes(self._bytes)
        pad = 8 - self._tail_bits
        return bytes(self._bytes) + bytes([(self._tail << pad) | (1 << (pad - 1))])


class BitReader:
    """Reads MSB first; anything that does not parse raises ``MalformedBits``."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self.pos = 0  # in bits
        self.end = 8 * len(self._data)

    @property
    def bits_left(self) -> int:
        return self.end - self.pos

    def u(self, n: int) -> int:
        stop = self.pos + n
        if n < 0 or stop > self.end:
            raise MalformedBits("payload truncated: a read past its end")
        first, last = self.pos >> 3, (stop + 7) >> 3
        self.pos = stop
        return (int.from_bytes(self._data[first:last], "big") >> (8 * last - stop)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return bool(self.u(1))

    def ue(self, k: int = 0) -> int:
        """Exp-Golomb of order k (``BitWriter.ue``)."""
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > MAX_UE_ZEROS:
                raise MalformedBits("Exp-Golomb code longer than 32 bits")
        return (((1 << zeros) - 1 + self.u(zeros)) << k) | self.u(k)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)

    def align_zero(self) -> None:
        while self.pos % 8:
            if self.u(1):
                raise MalformedBits("alignment bit not zero")

    def string(self, limit: int = 4096) -> str:
        out = bytearray()
        while (b := self.u(8)) != 0:
            out.append(b)
            if len(out) > limit:
                raise MalformedBits("st(v) string too long")
        return out.decode("utf-8", errors="replace")

    def at_zero_padding(self) -> bool:
        """True when all that is left is the zero bits that pad the last byte (``BitWriter.tobytes``)."""
        return self.bits_left < 8 and not self.u(self.bits_left)

    def more_data(self) -> bool:
        """True while bits other than the payload's trailing 1-then-zeros remain (more_data_in_payload)."""
        stripped = self._data.rstrip(b"\x00")
        if not stripped:
            return False
        last = stripped[-1]
        stop = 8 * len(stripped) - (last & -last).bit_length()  # index of the last 1 bit
        return self.pos < stop
