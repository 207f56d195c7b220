"""genpost eval's worker pool: results and failures come back keyed, a dying worker fails its point."""

from __future__ import annotations

import math
import os

import pytest

from genpost.errors import PipelineError
from genpost.eval import pool


def _refuse(code: int):
    error = PipelineError("bad ladder\nsecond line")
    error.exit_code = code
    raise error


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_and_errors_come_back_with_their_keys(jobs):
    with pool.executor(jobs) as ex:
        ex.submit("root", math.sqrt, 16.0)
        ex.submit("bad", _refuse, 7)
        got = dict(ex.next_done() for _ in range(2))
    assert got["root"] == 4.0
    if jobs == 1:  # in this process the exception itself
        assert isinstance(got["bad"], PipelineError) and got["bad"].exit_code == 7
    else:  # from a worker its line and exit code (genpost's exceptions need not pickle)
        assert got["bad"] == pool.Failed("PipelineError: bad ladder", 7)


def test_a_worker_that_dies_fails_its_point_instead_of_hanging():
    with pool.executor(2) as ex:
        ex.submit("dies", os._exit, 3)
        key, outcome = ex.next_done()
    assert key == "dies" and isinstance(outcome, BaseException)


def test_auto_jobs_is_the_cores_up_to_the_cap():
    assert 1 <= pool.auto_jobs() <= min(pool.cores(), pool.MAX_AUTO_JOBS)
