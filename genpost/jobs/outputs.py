"""Where outputs go: path checks before any work, atomic writes (temporary file + rename), default
sidecar names, and the provenance tag written into restored outputs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputPathError
from ..postprocessor import PostProcessor

__all__ = ["atomic_output", "check_paths", "default_sidecar", "found_sidecar", "provenance"]


def check_paths(inputs: list[str | os.PathLike | None], output: str | os.PathLike) -> None:
    out = Path(output).resolve()
    for path in inputs:
        if path is not None and Path(path).resolve() == out:
            raise OutputPathError(f"output {output} is the input; refusing to overwrite it")
    if out.is_dir():
        raise OutputPathError(f"output {output} is a directory")
    if not out.parent.is_dir():
        raise OutputPathError(f"output folder {out.parent} does not exist")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside ``path`` (same extension, so the muxer is picked the same way), renamed
    onto ``path`` only when the block succeeds; removed otherwise, so the destination is never partial."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def default_sidecar(output: str | os.PathLike) -> str:
    return str(output) + ".gpsi"


def found_sidecar(input: str | os.PathLike, sidecar: str | os.PathLike | None) -> str | os.PathLike | None:
    """``sidecar`` if given, else the default-named one beside ``input`` when it exists (what ``encode
    --carriage sidecar`` wrote), so moving the pair together is enough."""
    if sidecar is not None:
        return sidecar
    beside = default_sidecar(input)
    return beside if os.path.isfile(beside) else None


def provenance(chain: list[PostProcessor]) -> dict[str, str]:
    """The container metadata naming the post-processors that made an output (``genpost_postprocessors``)."""
    if not chain:
        return {}
    return {"genpost_postprocessors": ",".join(f"{p.name}/{p.version}" for p in chain)}
