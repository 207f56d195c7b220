"""Benchmark: what content adaptation's RD choice saw on each period (per-plane D and bits per candidate).

    python benchmarks/adapt_candidates.py SOURCE.y4m QP [--plugin gan-enhance]

Runs ``genpost encode`` with the plugin and prints, for every period, each candidate update's per-plane
SSE (on the sampled frames, scaled to the period), its bits, the decode's SSE, and which one was sent.
"""

from __future__ import annotations

import argparse
import time

from genpost import media
from genpost.jobs import pipeline
from genpost.learned import rd

_choose = rd.choose


def _logged(*args, **kwargs):
    start = time.monotonic()
    payload, log = _choose(*args, **kwargs)
    frames, pairs, base = args[5], args[1], args[8]
    print(f"period: {len(payload)}-byte update sent; choice took {time.monotonic() - start:.1f} s")
    print(f"  decode: {[round(x * frames / len(pairs)) for x in base]}")
    for name, entry in log.items():
        print(f"  {name}: D {[round(x) for x in entry['D']]} bits {entry['bits']}")
    return payload, log


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source")
    ap.add_argument("qp", type=int)
    ap.add_argument("--plugin", default="gan-enhance")
    ap.add_argument("--out", default="adapt_candidates.mkv")
    args = ap.parse_args(argv)
    rd.choose = _logged  # the pipeline's plugins call rd.choose through the module
    report = pipeline.encode(args.source, args.out, media.EncoderSettings(qp=args.qp), plugins=[args.plugin])
    print("side info bytes:", report.side_info_bytes)


if __name__ == "__main__":
    main()
