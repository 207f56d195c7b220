"""Benchmark: one `genpost eval` over a small test set; wall and CPU time, peak memory, time per stage.

    python benchmarks/eval_set.py [--plugin wiener --plugin gan-enhance] [--qp 27,32,37,42] [CLIP...]

Default clips: carphone (tests/data) and Big Buck Bunny 416x240 (../shared/vvc), 33 frames each, x265
medium. The eval runs as a child process; its CPU seconds and peak RSS come from ``os.wait4``. ``stages_s``
sums each run's ``seconds`` (the anchors once per clip, then every plugin's encode, enhance and measure).
The load average before and after is printed because the development machine is shared: wall time grows
with other people's jobs, CPU time much less.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIPS = [ROOT / "tests" / "data" / "carphone_176x144_29.97.y4m", ROOT.parent / "shared" / "vvc" / "bigbuckbunny_416x240_25.y4m"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", default=[str(c) for c in CLIPS])
    parser.add_argument("--plugin", action="append", default=None)
    parser.add_argument("--qp", default="27,32,37,42")
    args = parser.parse_args()
    plugins = args.plugin or ["wiener", "gan-enhance"]
    missing = [c for c in args.clips if not Path(c).is_file()]
    if missing:
        sys.exit(f"missing clip(s): {', '.join(missing)}")
    cmd = [sys.executable, "-m", "genpost.cli", "eval", *args.clips, "--qp", args.qp, "--json"]
    for p in plugins:
        cmd += ["--plugin", p]
    load_before = os.getloadavg()
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        result = json.loads(out.read()) if status == 0 else {}
    stages: dict[str, float] = {}
    seen_anchor = set()
    for run in result.get("runs", []):
        if run["source"] not in seen_anchor:
            seen_anchor.add(run["source"])
            for stage, s in run["seconds"]["anchor (shared)"].items():
                stages[f"anchor {stage}"] = round(stages.get(f"anchor {stage}", 0.0) + s, 2)
        for stage, s in run["seconds"]["genpost"].items():
            key = f"{run['plugin']} {stage}"
            stages[key] = round(stages.get(key, 0.0) + s, 2)
    print(json.dumps({
        "command": " ".join(cmd[3:]), "exit_status": status, "clips": len(args.clips), "plugins": plugins,
        "qps": args.qp, "runs": len(result.get("runs", [])), "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stages_s": stages, "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
