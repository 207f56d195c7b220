"""How every benchmark script ends: its result as JSON on stdout and, with ``--json PATH``, the same text
in that file (imported by the scripts as ``from _report import report``: they run as ``python
benchmarks/NAME.py``, so this folder is on ``sys.path``)."""

from __future__ import annotations

import json
from pathlib import Path


def report(result: dict, json_path: str | Path | None = None, indent: int = 1) -> None:
    """Print ``result`` as indented JSON; with ``json_path``, also write it there (newline-terminated)."""
    text = json.dumps(result, indent=indent)
    print(text, flush=True)
    if json_path:
        Path(json_path).write_text(text + "\n")
