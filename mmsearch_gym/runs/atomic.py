"""Atomic file and directory replacement: a reader sees the old version or the new one, never half of one.

Why one place: run manifests, submission zips, the leaderboard site, cache bundles and search indexes
are all read by other processes (or by the next run after a crash). Each used to carry its own copy
of "write a temporary sibling, then rename it over the target"; the copies differed in whether they
fsynced, set a file mode or cleaned up after a failure. Here it is written once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_file(path: str | os.PathLike[str], *, mode: int | None = None) -> Iterator[BinaryIO]:
    """A binary stream to a temporary sibling of `path`; on a clean exit it is flushed to disk,
    given `mode` (if set; otherwise mkstemp's owner-only 0o600) and renamed over `path`. On any
    failure the temporary file is removed and `path` keeps its old content (or stays absent).
    The parent directory must exist."""
    target = Path(path)
    handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as temp:
            yield temp
            temp.flush()
            os.fsync(temp.fileno())
        if mode is not None:
            os.chmod(temp_name, mode)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Write `data` to `path` atomically (see `atomic_file`)."""
    with atomic_file(path, mode=mode) as stream:
        stream.write(data)


def write_files_atomic(files: Iterable[tuple[str | os.PathLike[str], bytes]], *, mode: int | None = None) -> None:
    """Write several files, each atomically, staging all of them before the first is replaced: a
    failure while writing any of them leaves every target as it was and no temporary file behind."""
    with ExitStack() as stack:
        for path, data in files:
            stack.enter_context(atomic_file(path, mode=mode)).write(data)


def replace_directory(staging: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename the finished directory `staging` to `target`. A directory already at `target` (an older
    version, or one a concurrent process just wrote) is first renamed aside, then removed, so a
    reader opening `target` finds a complete directory at every moment but the instant between
    the two renames."""
    staging, target = Path(staging), Path(target)
    try:
        os.rename(staging, target)
    except OSError:  # a directory is in the way
        retired = target.parent / f"{target.name}.old-{uuid.uuid4().hex}"
        try:
            os.rename(target, retired)
        except FileNotFoundError:
            pass
        os.rename(staging, target)
        shutil.rmtree(retired, ignore_errors=True)


def write_directory_atomic(target: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """Run `write(staging)` on a fresh directory next to `target`, then `replace_directory` it into
    place, so a reader never sees a half-written directory (write its manifest last). The staging
    directory never survives, whether `write` succeeds or fails."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
    try:
        write(staging)
        replace_directory(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


__all__ = ["atomic_file", "replace_directory", "write_bytes_atomic", "write_directory_atomic", "write_files_atomic"]
