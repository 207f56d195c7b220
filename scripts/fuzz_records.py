#!/usr/bin/env python3
"""Long random-mutation fuzz of genpost.sideinfo's readers (the CI tests run a short hypothesis version).

Each case builds a valid record stream / sidecar / HEVC or VVC packet with genpost SEI, mutates it (bit flips,
byte sets, deletions, insertions, duplications, truncation) or replaces it with random bytes, and runs every
reader on it. A crash is any exception; a hang is a case over --timeout seconds (SIGALRM); an invariant
failure is a reader returning a record that was never written, unless a version-3 unit the bytes carry
passes its CRC (checked independently): CRC-16, on units up to 256 bytes, lets 1 in 65536 random damages
through. Those are counted apart (``crc16_false_accepts``); a CRC-32 or a failed CRC never yields one.

    python scripts/fuzz_records.py --cases 100000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from conftest import v3_crc_matches

from genpost import sideinfo


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def random_records(rng: random.Random) -> list[sideinfo.Record]:
    out = []
    for _ in range(rng.randint(0, 5)):
        fid = "".join(rng.choice("abcdefgxyz/-_.0123456789") for _ in range(rng.randint(1, 12)))
        size = rng.choice([0, 1, 16, rng.randint(0, 300), rng.randint(0, 3000)])
        payload = bytes(size) if rng.random() < 0.2 else rng.randbytes(size)
        out.append(sideinfo.Record(fid, rng.choice([0, 1, rng.randint(0, 2**32 - 1)]), payload))
    return out


def random_packet(rng: random.Random, codec: str, records: list[sideinfo.Record]) -> bytes:
    def hdr(t: int) -> bytes:
        return bytes([t << 1, 1]) if codec == "hevc" else bytes([0, (t << 3) | 1])

    params = [32, 33, 34] if codec == "hevc" else [15, 16, 17]
    vcl = [1, 19, 21] if codec == "hevc" else [0, 3, 8, 9]
    nals = [hdr(t) + rng.randbytes(rng.randint(1, 40)) for t in params if rng.random() < 0.7]
    nals += [hdr(rng.choice(vcl)) + rng.randbytes(rng.randint(1, 600)) for _ in range(rng.randint(1, 3))]
    nals = [n.replace(b"\x00\x00", b"\x00\x01") for n in nals]  # keep the base free of fake start codes
    if rng.random() < 0.5:
        pkt = b"".join(b"\x00\x00\x00\x01" + n for n in nals)
    else:
        pkt = b"".join(len(n).to_bytes(4, "big") + n for n in nals)
    aud = rng.random() < 0.3
    out = sideinfo.insert_nal(pkt, sideinfo.sei_nal(codec, records), codec, aud=aud)
    if sideinfo.extract_records(out, codec) != (records, 0) or (not aud and sideinfo.strip_records_nal(out, codec) != pkt):
        raise AssertionError("clean round trip failed")
    return out


def mutate(rng: random.Random, buf: bytes) -> bytes:
    b = bytearray(buf)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(7)
        i = rng.randint(0, max(len(b) - 1, 0))
        j = min(len(b), i + rng.randint(0, 64))
        if op == 0 and b:
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[i] = rng.choice([0, 1, 3, 0x80, 0xFF, rng.randrange(256)])
        elif op == 2:
            del b[i:j]
        elif op == 3:
            b[i:i] = rng.randbytes(rng.randint(0, 32))
        elif op == 4:
            b[j:j] = b[i:j]
        elif op == 5:
            del b[i:]
        elif op == 6:
            b[i:i] = rng.choice([b"G\xb2", b"\x00\x00\x01", b"\x00\x00\x03", b"\xff\xff", b"GPSIDCAR\x01"])
    return bytes(b)


def _units(data: bytes, codec: str) -> list[bytes]:
    """Every place a version-3 unit may sit in ``data``: the whole, after a UUID, genpost SEI messages."""
    messages = sideinfo.prefix_sei_messages(data, codec)
    return [data, data[16:], *(p[16:] for t, p, _ in messages if t == 5 and p[:16] == sideinfo.GENPOST_UUID)]


def one_case(rng: random.Random) -> str:
    """Run every reader on one input: "ok", "crc16" (a record not written, from a unit whose CRC matches) or
    "invented" (an invariant failure)."""
    records = random_records(rng)
    kind = rng.randrange(4)
    codec = rng.choice(["hevc", "vvc"])
    if kind == 0:
        data = sideinfo.encode_records(records)
    elif kind == 1:
        data = b"GPSIDCAR\x01" + b"".join(sideinfo.sidecar.encode_block([r]) for r in records)
    elif kind == 2:
        data = random_packet(rng, codec, records)
    else:
        data = rng.randbytes(rng.randint(0, 2000))
    if rng.random() < 0.9:
        data = mutate(rng, data)
    ok = True
    for recs, bad in (
        sideinfo.decode_records(data),
        sideinfo.read_sidecar(data),
        sideinfo.records_from_sei_unregistered(data),
        sideinfo.extract_records(data, codec),
    ):
        ok &= isinstance(bad, int) and bad >= 0 and all(r in records for r in recs)
    sideinfo.strip_records_nal(data, codec)
    if ok:
        return "ok"
    return "crc16" if any(v3_crc_matches(u) for u in _units(data, codec)) else "invented"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds before a case counts as a hang")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    signal.signal(signal.SIGALRM, _alarm)
    crashes = hangs = invariant_failures = crc16 = 0
    slowest = 0.0
    t0 = time.perf_counter()
    for case in range(args.cases):
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            outcome = one_case(rng)
            invariant_failures += outcome == "invented"
            crc16 += outcome == "crc16"
        except Hang:
            hangs += 1
        except Exception:
            crashes += 1
            if crashes <= 3:
                print(f"case {case}:", traceback.format_exc(), file=sys.stderr)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        slowest = max(slowest, time.perf_counter() - start)
    summary = {
        "cases": args.cases,
        "crashes": crashes,
        "hangs": hangs,
        "invariant_failures": invariant_failures,
        "crc16_false_accepts": crc16,
        "slowest_case_ms": round(slowest * 1000, 2),
        "seconds": round(time.perf_counter() - t0, 2),
        "seed": args.seed,
    }
    print(json.dumps(summary))
    return 1 if crashes or hangs or invariant_failures else 0


if __name__ == "__main__":
    sys.exit(main())
