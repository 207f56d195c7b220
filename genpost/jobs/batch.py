"""genpost batch MANIFEST: a catalogue of enhance/encode jobs run over the workers, with a resumable report.

A manifest lists jobs (input -> output + options) as CSV, JSON or TOML (docs/scaling.md). Every job is
checked before any work starts (a bad manifest exits 2). Each job then runs whole on one worker (a Ray
task with ``--workers`` > 1, this process with 1) and its outcome goes into the report (status, frames,
fallbacks, fps, error), rewritten atomically after every change. A job that fails never stops the others;
one that failed for a reason that may pass (a crash, a lost worker, a failed job) is retried up to
``retries`` times; a bad input, option, output path or plugin is not retried, it would fail the same way.
Run the same command again after a crash or Ctrl-C: jobs the report lists as done, whose input and options
are unchanged and whose output exists, are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ..errors import GenpostError, PipelineError
from ..options import OptionError, PluginErrorPolicy

COMMANDS = ("enhance", "encode")
COMMON = {"plugin", "sideinfo", "qp", "crf", "preset", "bit_depth", "fps", "option", "max_errors", "on_plugin_error"}
KEYS = {"enhance": COMMON | {"codec"}, "encode": COMMON | {"keyint", "carriage", "target"}}
INTS, FLOATS = {"qp", "bit_depth", "keyint", "max_errors"}, {"crf"}
NOT_RETRIED = (2, 3, 4, 5)  # bad usage, unreadable input, unusable output path, plugin problem
REPORT_VERSION = 1


class ManifestError(PipelineError):
    exit_code = 2


@dataclass
class Job:
    input: str
    output: str
    command: str = "enhance"
    options: dict = field(default_factory=dict)

    def key(self) -> str:
        """What a finished job must still match to be skipped: input file (size, mtime), output, options."""
        try:
            st = os.stat(self.input)
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None
        blob = json.dumps([self.command, self.input, stamp, self.output, self.options], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- the manifest


def load_manifest(path: str | os.PathLike) -> list[Job]:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = [{k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()} for row in csv.DictReader(text.splitlines())]
        elif suffix == ".json":
            data = json.loads(text)
            rows = data.get("jobs") if isinstance(data, dict) else data
        elif suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
            rows = data.get("jobs", data.get("job"))
        else:
            raise ManifestError(f"manifest {path}: use .csv, .json or .toml")
    except (ValueError, csv.Error) as exc:  # json/toml decode errors are ValueErrors
        raise ManifestError(f"manifest {path} is not valid {suffix[1:].upper()}: {exc}".splitlines()[0]) from None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ManifestError(f"manifest {path} lists no jobs (CSV rows, a JSON list, or TOML [[jobs]] tables)")
    jobs = [_job(row, n, path.resolve().parent) for n, row in enumerate(rows, 1)]
    outputs: dict[str, int] = {}
    for n, job in enumerate(jobs, 1):
        if job.output in outputs:
            raise ManifestError(f"manifest job {n} writes {job.output} like job {outputs[job.output]}")
        outputs[job.output] = n
    inputs = {job.input for job in jobs}
    for n, job in enumerate(jobs, 1):
        if job.output in inputs:
            raise ManifestError(f"manifest job {n} would overwrite an input: {job.output}")
    return jobs


def _job(row: dict, n: int, base: Path) -> Job:
    row = {str(k).replace("-", "_"): v for k, v in row.items()}
    command = str(row.pop("command", "enhance"))
    if command not in COMMANDS:
        raise ManifestError(f"manifest job {n}: command must be one of {', '.join(COMMANDS)}, got {command!r}")
    for needed in ("input", "output"):
        if not row.get(needed):
            raise ManifestError(f"manifest job {n}: no {needed}")
    paths = {k: str((base / str(row.pop(k))).resolve()) for k in ("input", "output")}
    unknown = sorted(set(row) - KEYS[command])
    if unknown:
        raise ManifestError(f"manifest job {n}: unknown option {unknown[0]!r} for {command}")
    if "qp" in row and "crf" in row:
        raise ManifestError(f"manifest job {n}: give qp or crf, not both")
    options = {}
    for key, value in row.items():
        try:
            options[key] = _value(key, value, base)
        except (TypeError, ValueError, ZeroDivisionError):
            raise ManifestError(f"manifest job {n}: bad value for {key}: {value!r}") from None
    try:
        _check_values(command, options)
    except OptionError as exc:
        raise ManifestError(f"manifest job {n}: {exc}") from None
    return Job(paths["input"], paths["output"], command, options)


def _check_values(command: str, o: dict) -> None:
    """The checks the command's flags get on the command line (QP, CRF, preset, codec, bit depth, choices,
    declared plugin options), so a bad job fails the manifest before any job runs."""
    from ..cli.checks import check_plugin_options, check_values, encoder_settings, with_target

    codec = "libx265" if command == "encode" else o.get("codec")
    encoder_settings(codec, o.get("bit_depth"), o.get("qp"), o.get("crf"), o.get("preset", "medium"), o.get("keyint"))
    check_values(carriage=o.get("carriage"), on_plugin_error=o.get("on_plugin_error"), max_errors=o.get("max_errors"),
                 keyint=o.get("keyint"))  # fmt: skip
    check_plugin_options(o.get("option") or {})
    with_target(o.get("option") or {}, str(o.get("target", "fidelity")))


def _value(key: str, value, base: Path):
    if key in INTS:
        return int(value)
    if key in FLOATS:
        return float(value)
    if key == "fps":
        if Fraction(str(value)) <= 0:
            raise ValueError
        return str(value)
    if key == "plugin":  # a list, or names separated by ';' (CSV)
        return [str(v) for v in value] if isinstance(value, list) else [v.strip() for v in str(value).split(";") if v.strip()]
    if key == "option":  # a table, or KEY=VALUE pairs separated by ';' (CSV)
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        pairs = [p.partition("=") for p in str(value).split(";") if p.strip()]
        if any(not sep or not k for k, sep, _ in pairs):
            raise ValueError
        return {k.strip(): v.strip() for k, _, v in pairs}
    if key == "sideinfo":
        return str((base / str(value)).resolve())
    return str(value)


# ---------------------------------------------------------------- one job (on a worker)


def run_job(command: str, input: str, output: str, options: dict) -> dict:
    """Run one job in this process; never raises but for Ctrl-C: a failure becomes status "failed"."""
    from .. import media
    from ..cli.checks import with_target
    from .encode import encode
    from .enhance import enhance

    o = dict(options)
    crf = o.get("crf")
    if command == "encode" and crf is None and o.get("qp") is None:
        crf = 28  # encode's default, as on the command line
    settings = media.EncoderSettings(
        codec="libx265" if command == "encode" else o.get("codec"), bit_depth=o.get("bit_depth") or 0,
        qp=o.get("qp"), crf=crf, preset=o.get("preset", "medium"), keyint=o.get("keyint"),
    )  # fmt: skip
    fps = Fraction(o["fps"]) if o.get("fps") else None
    start = time.perf_counter()
    try:
        if command == "encode":
            report = encode(
                input, output, settings, plugins=o.get("plugin", []), carriage=o.get("carriage", "sei"),
                sidecar=o.get("sideinfo"), fps=fps,
                options=with_target(o.get("option") or {}, str(o.get("target", "fidelity"))),
                max_errors=o.get("max_errors", 0), on_plugin_error=o.get("on_plugin_error", PluginErrorPolicy.FAIL),
            )  # fmt: skip
            fallbacks = sum(report.plugin_errors.values())
        else:
            report = enhance(
                input, output, settings, plugins=o.get("plugin") or None, sidecar=o.get("sideinfo"), fps=fps,
                options=o.get("option"),
                max_errors=o.get("max_errors"), on_plugin_error=o.get("on_plugin_error", PluginErrorPolicy.SKIP),
            )  # fmt: skip
            fallbacks = sum(s.fallbacks for s in report.per_plugin.values())
    except Exception as exc:
        code = exc.exit_code if isinstance(exc, GenpostError) else 1
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {"status": "failed", "exit_code": code, "error": message}
    seconds = time.perf_counter() - start
    return {"status": "done", "exit_code": 0, "error": None, "frames": report.frames, "fallbacks": fallbacks,
            "fps": round(report.frames / seconds, 3) if seconds else None, "seconds": round(seconds, 3),
            "warnings": list(report.warnings)}  # fmt: skip


# ---------------------------------------------------------------- the catalogue


class Report:
    """The per-job report file, rewritten atomically after every change so a crash loses nothing."""

    def __init__(self, path: Path, manifest: Path, jobs: list[Job]):
        self.path = path
        old = self._read(path)
        self.entries = []
        for n, job in enumerate(jobs, 1):
            key = job.key()
            entry = {"job": n, "command": job.command, "input": job.input, "output": job.output, "key": key,
                     "status": "pending", "attempts": 0, "frames": None, "fallbacks": None, "fps": None,
                     "seconds": None, "exit_code": None, "error": None}  # fmt: skip
            before = old.get(key)
            if before and before.get("status") == "done" and os.path.isfile(job.output):
                entry.update(before, job=n, skipped=True)  # finished by an earlier run
            self.entries.append(entry)
        self.manifest = str(manifest)
        self.save()

    @staticmethod
    def _read(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
            return {e["key"]: e for e in data["jobs"] if data.get("version") == REPORT_VERSION}
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def save(self) -> None:
        counts = {s: sum(e["status"] == s for e in self.entries) for s in ("done", "failed", "pending")}
        data = {"version": REPORT_VERSION, "manifest": self.manifest, "summary": counts, "jobs": self.entries}
        tmp = self.path.with_name(f".{self.path.name}.part")
        with open(tmp, "w") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def to_dict(self) -> dict:
        return json.loads(self.path.read_text())


def run(manifest, workers: int = 1, address: str | None = None, retries: int = 1, report_path=None,
        progress=lambda done, total: None) -> dict:  # fmt: skip
    """Run every job of ``manifest`` not already done; returns the report as a dict."""
    if retries < 0:
        raise ManifestError(f"--retries must be 0 or more, got {retries}")
    jobs = load_manifest(manifest)
    if workers < 1:
        raise ManifestError(f"--workers must be at least 1, got {workers}")
    report_path = Path(report_path or f"{manifest}.report.json")
    if not report_path.resolve().parent.is_dir():
        raise ManifestError(f"report folder {report_path.resolve().parent} does not exist")
    if workers > 1:
        from .distributed import require_ray

        require_ray()
    report = Report(report_path, Path(manifest).resolve(), jobs)
    todo = [n for n, e in enumerate(report.entries) if e["status"] != "done"]
    finished = len(jobs) - len(todo)

    def record(n: int, result: dict) -> bool:
        """Put a result in the report; True when the job is to run again."""
        nonlocal finished
        entry = report.entries[n]
        entry["attempts"] += 1
        entry.update(result, skipped=False)
        again = result["status"] == "failed" and result["exit_code"] not in NOT_RETRIED and entry["attempts"] <= retries
        if not again:
            finished += 1
            progress(finished, len(jobs))
        report.save()
        return again

    progress(finished, len(jobs))
    if workers == 1:
        for n in todo:
            job = jobs[n]
            while record(n, run_job(job.command, job.input, job.output, job.options)):
                pass
    else:
        _run_on_ray(jobs, todo, workers, address, record)
    return report.to_dict()


def _run_on_ray(jobs: list[Job], todo: list[int], workers: int, address, record) -> None:
    """Each job a Ray task on one CPU, at most ``workers`` at a time; Ctrl-C cancels them all."""
    from .distributed import session

    with session(workers, address) as ray:
        task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        queue, pending = list(todo), {}
        try:
            while queue or pending:
                while queue and len(pending) < workers:
                    n = queue.pop(0)
                    job = jobs[n]
                    pending[task.remote(job.command, job.input, job.output, job.options)] = n
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    n = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker died (killed, out of memory, node lost)
                        result = {"status": "failed", "exit_code": 1, "error": f"worker lost: {exc}".splitlines()[0]}
                    if record(n, result):
                        queue.append(n)
        finally:
            for ref in pending:  # Ctrl-C: each job's own cleanup runs (its output is never half-written)
                ray.cancel(ref)
            if pending:
                ray.wait(list(pending), num_returns=len(pending), timeout=10)


def summary_line(data: dict) -> str:
    s = data["summary"]
    failed = [f"\n  job {e['job']} failed: {e['error']}" for e in data["jobs"] if e["status"] == "failed"]
    return f"{s['done']} done, {s['failed']} failed, {s['pending']} pending" + "".join(failed)

