"""How an encode or enhance job runs, apart from what it computes: ``Schedule``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """How a job runs: in one pass (the default), in resumable chunks (``resume``, ``chunk_frames``:
    genpost.jobs.resume) or on Ray workers (``workers`` > 1, ``chunk_frames``, ``ray_address``:
    genpost.jobs.distributed). The choices change how the work is cut, never the result, and only make sense
    together (``--resume`` runs in one process), so ``genpost.jobs.encode.encode`` and
    ``genpost.jobs.enhance.enhance`` take them as one value, checked once when it is made: before any work.

    ``chunk_frames`` None: the commands' default chunking. ``ray_address`` None: a local Ray session.
    """

    resume: bool = False
    chunk_frames: int | None = None
    workers: int = 1
    ray_address: str | None = None

    def __post_init__(self) -> None:
        """A usable --workers (at least 1, not with --resume, Ray installed when > 1: WorkersUsageError,
        exit 2); with ``workers`` 1 Ray is never imported."""
        if self.workers != 1:
            from .distributed import check_workers

            check_workers(self.workers, self.resume)

    @property
    def distributed(self) -> bool:
        """The job runs on Ray workers."""
        return self.workers > 1
