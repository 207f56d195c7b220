#!/usr/bin/env python3
"""Hypothesis fuzz of genpost's side-info readers over mutated REAL packets (CI runs 400 cases of the same
property in tests/robustness/test_sideinfo_faults.py; this is the long run).

The corpus: every access unit of the carphone clip coded by x265 (length-prefixed in MKV, Annex-B raw) and
of the twelve VTM VVC streams in tests/data/vvc, each with a genpost SEI inserted exactly as ``encode``
does (one to three records, payloads of 0 to 3000 bytes, several formats). Each case picks a packet and
applies 1 to 8 mutations (bit flip, byte set, delete, insert, duplicate a span, truncate), then runs
``extract_records`` and ``strip_records_nal`` on it and ``read_sidecar`` on the same mutations of the
packet's records as a sidecar. A crash is any exception; a hang is a case over --timeout seconds; an
invented record (one that was not in the clean packet) is an invariant failure.

    python scripts/fuzz_real_packets.py --cases 100000
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
CARPHONE = ROOT / "tests" / "data" / "carphone_176x144_29.97.y4m"
VVC = ROOT / "tests" / "data" / "vvc"


class Hang(Exception):
    pass


def corpus(folder: Path) -> list[tuple[str, bytes, list]]:
    from genpost import media, sideinfo
    from genpost.jobs import pipeline

    out: list[tuple[str, bytes, list]] = []
    sources = []
    for ext in ("mkv", "265"):
        path = folder / f"carphone.{ext}"
        pipeline.encode(CARPHONE, path, media.EncoderSettings(qp=32, preset="fast", keyint=8))
        sources.append(("hevc", path, "30000/1001" if ext == "265" else None))
    sources += [("vvc", p, "25") for p in sorted(VVC.glob("*.266"))]
    for codec, path, fps in sources:
        with media.InputFile(path, fps) as inp:
            for i, (data, _) in enumerate(inp.video_packets()):
                records = [
                    sideinfo.Record(f"fmt{k}/1", i, bytes((i * 31 + k + j) % 256 for j in range((i * 97 + k * 500) % 3001)), 1 + k)
                    for k in range(1 + i % 3)
                ]
                try:
                    pkt = sideinfo.insert_nal(data, sideinfo.sei_nal(codec, records), codec, aud=codec == "vvc")
                except ValueError:
                    continue  # parameter sets only
                got, bad = sideinfo.extract_records(pkt, codec)
                assert got == records and bad == 0, "clean round trip failed"
                out.append((codec, pkt, records))
    return out


sys.path.insert(0, str(ROOT / "tests"))
from conftest import v3_crc_matches
from robustness.corrupt import mutate, mutations

MUTATIONS = mutations(max_ops=8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds before a case counts as a hang")
    args = ap.parse_args()
    from genpost import sideinfo

    with tempfile.TemporaryDirectory() as tmp:
        packets = corpus(Path(tmp))
    stats = {"cases": 0, "crashes": 0, "hangs": 0, "invented_records": 0, "crc16_false_accepts": 0, "records_recovered": 0, "malformed_seen": 0}
    slowest = [0.0]

    def alarm(signum, frame):
        raise Hang()

    signal.signal(signal.SIGALRM, alarm)

    @settings(
        max_examples=args.cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(pick=st.integers(0, 1 << 30), ops=MUTATIONS)
    def case(pick, ops):
        codec, clean, original = packets[pick % len(packets)]
        stats["cases"] += 1
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
        try:
            data = mutate(clean, ops)
            records, bad = sideinfo.extract_records(data, codec)
            sideinfo.strip_records_nal(data, codec)
            side = b"GPSIDCAR\x01" + b"".join(sideinfo.sidecar.encode_block([r]) for r in original)  # write_sidecar's bytes
            side_records, side_bad = sideinfo.read_sidecar(mutate(side, ops))
        except Hang:
            stats["hangs"] += 1
            return
        except Exception:
            stats["crashes"] += 1
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            slowest[0] = max(slowest[0], time.perf_counter() - start)
        invented = sum(r not in original for r in records)
        units = [p[16:] for t, p, _ in sideinfo.prefix_sei_messages(data, codec) if t == 5 and p[:16] == sideinfo.GENPOST_UUID]
        if invented and any(v3_crc_matches(u) for u in units):
            stats["crc16_false_accepts"] += invented
            invented = 0
        stats["invented_records"] += invented + sum(r not in original for r in side_records)
        stats["records_recovered"] += len(records) + len(side_records)
        stats["malformed_seen"] += bad + side_bad

    t0 = time.perf_counter()
    try:
        case()
    except Exception as exc:  # the first crash, with hypothesis's minimal example above
        print(f"crash: {type(exc).__name__}: {exc}", file=sys.stderr)
    summary = {
        **stats,
        "corpus_packets": len(packets),
        "slowest_case_ms": round(slowest[0] * 1000, 2),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(summary))
    return 1 if stats["crashes"] or stats["hangs"] or stats["invented_records"] else 0


if __name__ == "__main__":
    sys.exit(main())
