"""Measure genpost's record overhead in a stream: what the carriage costs beyond the plugins' payloads.

    python benchmarks/record_overhead.py STREAM [--json out.json]

For each access unit whose packet carries genpost records in SEI (the default carriage), two sizes:
``stream_bytes``, what the packet's genpost SEI NAL units take as written (packet size minus the packet
without them), and ``carried_bytes``, the SEI
NAL unit rebuilt exactly as the current writer builds it (``sideinfo.sei_nal``, plus the 4-byte length or
start code). Reported: records, access units with records, payload bytes, both sizes, and the overhead per
record and per access unit, in all and beyond the SEI framing (``sideinfo`` unit bytes only); also the
per-record overhead of ``n`` ``wiener/1`` records sharing one access unit (n = 1, 2, 4, 8, 16), which is
what grouping records buys. Issue 16 target: <= 12 bytes per record in the default carriage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from genpost import media, sideinfo


def _sizes(recs: list[sideinfo.Record], codec: str) -> tuple[int, int]:
    """(SEI NAL unit with its 4-byte length, the genpost unit inside it) as the writer builds them."""
    return 4 + len(sideinfo.sei_nal(codec, recs)), len(sideinfo.encode_records(recs))


def shared(format_id: str = "wiener/1", n_max: int = 16, codec: str = "hevc") -> dict[int, dict[str, float]]:
    """Overhead per record (bytes beyond payloads) when n records of one format, for consecutive frames
    below 128 with 40-byte payloads, share one access unit's SEI: in all (``total``), of which the SEI
    framing (``framing``: length, NAL header, payloadType/Size, UUID, trailing bits, emulation prevention)
    and genpost's unit (``records``: header, record fields, CRC)."""
    out = {}
    for n in (1, 2, 4, 8, 16):
        if n > n_max:
            break
        recs = [sideinfo.Record(format_id, 100 + i, b"\x55" * 40) for i in range(n)]
        nal, unit = _sizes(recs, codec)
        out[n] = {
            "total": round((nal - 40 * n) / n, 2),
            "framing": round((nal - unit) / n, 2),
            "records": round((unit - 40 * n) / n, 2),
        }
    return out


def measure(path: str) -> dict:
    aus = []
    in_stream = 0
    with media.InputFile(path) as inp:
        codec = inp.sei_codec or "hevc"
        for kind, data in inp.side_channels():
            if kind != "packet":
                continue
            recs, _ = sideinfo.extract_records(data, codec)
            if recs:
                aus.append(recs)
                in_stream += len(data) - len(sideinfo.strip_records_nal(data, codec))
    n_rec = sum(len(r) for r in aus)
    payload = sum(len(x.payload) for r in aus for x in r)
    sizes = [_sizes(r, codec) for r in aus]
    carried = sum(s for s, _ in sizes)
    units = sum(u for _, u in sizes)

    def per(total: int, n: int) -> float | None:
        return round(total / n, 2) if n else None

    return {
        "stream": Path(path).name,
        "access_units_with_records": len(aus),
        "records": n_rec,
        "formats": sorted({x.format_id for r in aus for x in r}),
        "payload_bytes": payload,
        "stream_bytes": in_stream,
        "stream_overhead_per_record": per(in_stream - payload, n_rec),
        "carried_bytes": carried,
        "overhead_per_record": per(carried - payload, n_rec),
        "overhead_per_access_unit": per(carried - payload, len(aus)),
        "sei_framing_per_access_unit": per(carried - units, len(aus)),
        "overhead_per_record_beyond_framing": per(units - payload, n_rec),
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
