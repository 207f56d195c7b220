"""genpost batch checks every job of a manifest as the command line checks its flags, before any job runs
(docs/scaling.md): a bad job is one line and exit 2, with no output and no report written."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import CARPHONE

BAD_JOBS = {
    "qp": ('qp = 99', "manifest job 2: --qp 99: must be in 0..51"),
    "preset": ('preset = "sloow"', "manifest job 2: --preset sloow: use one of ultrafast"),
    "option-key": ('option = { "wiener.nonsense" = "1" }', "manifest job 2: --option wiener.nonsense=1: wiener has no option 'nonsense'"),
    "option-value": ('option = { "wiener.lambda_scale" = "abc" }', "job 2: --option wiener.lambda_scale=abc: wiener.lambda_scale must be a number"),
    "carriage": ('command = "encode"\ncarriage = "foo"', "manifest job 2: --carriage foo: use one of sei"),
    "bit-depth": ("bit_depth = 12", "manifest job 2: --bit-depth must be 8 or 10, got 12"),
    "target": ('command = "encode"\ntarget = "beauty"', "manifest job 2: genpost.target must be one of fidelity, perception"),
}


@pytest.mark.parametrize("case", list(BAD_JOBS))
def test_a_bad_job_stops_the_manifest_before_any_work(case, tmp_path):
    line, says = BAD_JOBS[case]
    manifest = tmp_path / "jobs.toml"
    manifest.write_text(
        f'[[jobs]]\ninput = "{CARPHONE}"\noutput = "good.mkv"\ncommand = "encode"\nqp = 42\npreset = "ultrafast"\n\n'
        f'[[jobs]]\ninput = "{CARPHONE}"\noutput = "bad.mkv"\n{line}\n'
    )
    result = subprocess.run([sys.executable, "-m", "genpost.cli", "batch", str(manifest), "-q"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    err = [x for x in result.stderr.splitlines() if x.strip()]
    assert result.returncode == 2, result.stderr
    assert len(err) == 1 and err[0].startswith("genpost: error: ") and says in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.toml"]  # no job ran, no report
