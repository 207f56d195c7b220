"""Decode damage: count it as FFmpeg does, and keep every frame and its timing when pictures are lost.

A damaged stream makes the decoder reject packets, flag pictures corrupt, or silently never output a
picture. genpost counts all of them. A picture that never comes out is replaced by a copy of the
previous one (concealment, as players do) carrying the lost picture's own timestamp, so the output keeps
the input's frame count and timing and side info stays on the right frame index. Raw Annex-B streams
carry no timestamps: there a lost picture can only be counted, not placed.

Plain Python (no av): ``media`` feeds it packet and picture timestamps.
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, dataclass


@dataclass
class DecodeDamage:
    """What went wrong while decoding one input; ``frames`` is what ``--max-errors`` counts."""

    rejected_packets: int = 0  # packets the decoder refused (FFmpeg returned an error)
    corrupt: int = 0  # pictures the decoder output but flagged corrupt
    concealed: int = 0  # pictures never output, replaced by the previous picture with their timestamp
    lost: int = 0  # pictures never output whose place is unknown (raw streams; a truncated tail)
    skipped_leading: int = 0  # pictures before the first one output, skipped without a decoder error
    truncated: bool = False  # the container promised more video than the file holds
    first: str | None = None  # the first problem, one line

    @property
    def frames(self) -> int:
        """Damaged frames in the output (or missing from it)."""
        return self.corrupt + self.concealed + self.lost

    def note(self, message: str) -> None:
        if self.first is None:
            self.first = message

    def to_dict(self) -> dict:
        return {**asdict(self), "frames": self.frames}


class Concealer:
    """Matches the pictures a decoder outputs to the packets it was given, in presentation order.

    Decoders output pictures in increasing pts. So when a picture with pts P comes out, every packet pts
    below P that has not come out yet never will: those pictures are lost, and are concealed right before
    P. A picture whose slot is already filled (late or duplicate pts) is dropped, so timestamps stay
    strictly increasing for the muxer.
    """

    def __init__(self, timed: bool, step: int | None = None) -> None:
        self.timed = timed
        # constant frame duration in pts ticks, for containers (MPEG-TS) whose parser can merge a damaged
        # picture into its neighbour's packet, taking its timestamp along: a gap of whole frame durations
        # in a steady cadence is then a lost picture too
        self.step = step
        self._steady = 8  # the container's frame rate is trusted until a gap that is not whole steps
        self._pending: list[int] = []
        self._last: int | None = None
        self.sent = 0
        self.received = 0
        self.leading = 0  # pts below the first picture output: never shown (e.g. RASL after a cut at a CRA)

    def sent_packet(self, pts: int | None) -> None:
        self.sent += 1
        if self.timed and pts is not None:
            heapq.heappush(self._pending, pts)

    def place(self, pts: int | None) -> tuple[list[int], int | None, bool]:
        """For a decoded picture: (pts of lost pictures to conceal before it, its pts, keep it?)."""
        self.received += 1
        if not self.timed:
            return [], pts, True
        if pts is None:
            if not self._pending:
                return [], None, False
            pts = self._pending[0]
        if self._last is not None and pts <= self._last:
            return [], pts, False
        lost = self._pop_below(pts)
        if self._last is None:  # nothing is shown before the first picture, as in any player
            self.leading, lost = len(lost), []
        elif self.step:
            lost = sorted(lost + self._cadence_gaps(pts, lost))
        if self._pending and self._pending[0] == pts:
            heapq.heappop(self._pending)
        self._last = pts
        return lost, pts, True

    def finish(self) -> tuple[list[int], int]:
        """After the decoder is drained: (pts of lost pictures to conceal at the end, unplaceable losses)."""
        if not self.timed:
            return [], max(0, self.sent - self.received)
        lost = self._pop_below(None)
        if lost:
            self._last = lost[-1]
        return lost, 0

    def _cadence_gaps(self, pts: int, known: list[int]) -> list[int]:
        """Frame slots in the gap before ``pts`` that no packet timestamp (``known``) accounts for."""
        gap, step = pts - self._last, self.step
        k, slack = round(gap / step), step // 4  # slack: timestamps rounded by an earlier container (ms)
        if abs(gap - k * step) > slack:
            self._steady = 0  # not whole frame durations (VFR, pulldown): trust the timestamps alone
            return []
        slots = [self._last + j * step for j in range(1, k)] if k <= 64 else []
        unknown = [s for s in slots if all(abs(s - q) > slack for q in known)]
        steady = self._steady
        if k == 1 or not unknown:
            self._steady += 1  # the cadence holds, with or without pictures the timestamps account for
        if steady < 8 or (k > 8 and len(unknown) > (k - 1) // 2):  # no steady cadence, or a discontinuity
            return []
        return unknown

    def _pop_below(self, limit: int | None) -> list[int]:
        lost: list[int] = []
        while self._pending and (limit is None or self._pending[0] < limit):
            q = heapq.heappop(self._pending)
            if (self._last is None or q > self._last) and (not lost or q != lost[-1]):
                lost.append(q)
        return lost
