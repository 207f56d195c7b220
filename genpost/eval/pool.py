"""Where ``genpost eval`` runs its points: in this process (``jobs`` 1) or in ``jobs`` worker processes.

An evaluation is many independent points (an anchor or a plugin at one QP of one clip: encode, restore,
measure), much of it single-threaded numpy, so on N cores N points at a time finish sooner than one point
using N cores. Workers are spawned (never forked: torch and x265 hold threads), each worker's torch gets
``cores // jobs`` threads so that the workers do not fight over the cores, and workers leave Ctrl-C to
this process, which ends them at once.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import queue
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterator

from ..errors import one_line

MAX_AUTO_JOBS = 4  # "auto" uses the cores up to this many workers (each holds its own caches and torch)
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Failed:
    """A point's exception as it comes back from a worker: genpost's exceptions do not all pickle."""

    error: str  # "TypeName: first line of the message"
    exit_code: int | None


def cores() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_jobs() -> int:
    """The number of workers ``--jobs 0`` means: the usable cores, at most MAX_AUTO_JOBS."""
    return max(1, min(cores(), MAX_AUTO_JOBS))


class Inline:
    """Runs each point when it is submitted, in this process; its exception is raised as it was."""

    def __init__(self):
        self.done: collections.deque = collections.deque()

    def submit(self, key: Hashable, fn: Callable, *args) -> None:
        try:
            self.done.append((key, fn(*args)))
        except Exception as exc:
            self.done.append((key, exc))

    def next_done(self) -> tuple[Hashable, Any]:
        """(key, result or exception) of a finished point, in submission order."""
        return self.done.popleft()


class Workers:
    """A pool of spawned worker processes; a point's exception comes back as ``Failed``, and a worker that
    dies (killed, out of memory) fails its point instead of leaving the evaluation waiting."""

    def __init__(self, jobs: int):
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(jobs, context, _start_worker, (max(1, cores() // jobs),))
        self.done: queue.SimpleQueue = queue.SimpleQueue()

    def submit(self, key: Hashable, fn: Callable, *args) -> None:
        future = self.pool.submit(_guarded, fn, *args)
        future.add_done_callback(lambda f: self.done.put((key, f.exception() or f.result())))

    def next_done(self) -> tuple[Hashable, Any]:
        """(key, result, ``Failed`` or exception) of the next point to finish."""
        return self.done.get()

    def kill(self) -> None:
        """End the workers now, running points included (the pool's shutdown would wait for them)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in multiprocessing.active_children():
            process.terminate()
            process.join()


@contextlib.contextmanager
def executor(jobs: int) -> Iterator[Inline | Workers]:
    """``Inline`` for one job, else ``Workers``, ended at once (running points killed) if the evaluation
    stops early: an error, or Ctrl-C."""
    if jobs <= 1:
        yield Inline()
        return
    workers = Workers(jobs)
    try:
        yield workers
    except BaseException:
        workers.kill()
        raise
    workers.pool.shutdown()


def _start_worker(threads: int) -> None:
    """Worker initializer: torch's and BLAS's thread count (read when first imported); Ctrl-C is the main
    process's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)


def _guarded(fn: Callable, *args):
    try:
        return fn(*args)
    except Exception as exc:
        return Failed(one_line(exc), getattr(exc, "exit_code", None))
