"""Measure genpost's record overhead in a stream: what the carriage costs beyond the plugins' payloads.

    python benchmarks/record_overhead.py STREAM [--json out.json]

For each access unit whose packet carries genpost records in SEI (the default carriage), the SEI NAL unit
that carries them is rebuilt exactly as the writer builds it (``sideinfo.sei_nal``, plus the 4-byte
length or start code) and its size compared with the payload bytes. Reported: records, access units with
records, payload bytes, carried bytes, and the overhead per record and per access unit; also the
per-record overhead of ``n`` records sharing one access unit (n = 1, 2, 4, 8, 16), which is what grouping
records buys. Issue 16 target: <= 12 bytes per record in the default carriage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genpost import media, sideinfo


def shared(format_id: str = "wiener/1", n_max: int = 16, codec: str = "hevc") -> dict[int, float]:
    """Overhead per record (bytes beyond payloads, SEI NAL with a 4-byte length) when n records of one
    format, for consecutive frames, share one access unit's SEI."""
    out = {}
    for n in (1, 2, 4, 8, 16):
        if n > n_max:
            break
        recs = [sideinfo.Record(format_id, 100 + i, b"\x55" * 40) for i in range(n)]
        out[n] = round((4 + len(sideinfo.sei_nal(codec, recs)) - 40 * n) / n, 2)
    return out


def measure(path: str) -> dict:
    aus = []
    with media.InputFile(path) as inp:
        codec = inp.sei_codec or "hevc"
        for kind, data in inp.side_channels():
            if kind != "packet":
                continue
            recs, _ = sideinfo.extract_records(data, codec)
            if recs:
                aus.append(recs)
    n_rec = sum(len(r) for r in aus)
    payload = sum(len(x.payload) for r in aus for x in r)
    carried = sum(4 + len(sideinfo.sei_nal(codec, r)) for r in aus)
    return {
        "stream": Path(path).name,
        "access_units_with_records": len(aus),
        "records": n_rec,
        "formats": sorted({x.format_id for r in aus for x in r}),
        "payload_bytes": payload,
        "carried_bytes": carried,
        "overhead_per_record": round((carried - payload) / n_rec, 2) if n_rec else None,
        "overhead_per_access_unit": round((carried - payload) / len(aus), 2) if aus else None,
        "shared_access_unit_overhead_per_record": shared(codec=codec),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stream")
    ap.add_argument("--json")
    args = ap.parse_args()
    text = json.dumps(measure(args.stream), indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
