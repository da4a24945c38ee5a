"""The storage layer under `SearchCache`: a bytes-only diskcache `Disk`, and one error for a broken
database file.

Why a bytes-only disk: diskcache pickles anything that is not bytes, so a cache directory from
elsewhere could run code when read. `BytesOnlyDisk` refuses to write anything diskcache would pickle
and refuses to read anything stored as a pickle.

Why `CorruptCache`: SQLite reports a damaged or truncated ``cache.db`` as a bare
``sqlite3.DatabaseError`` ("database disk image is malformed") raised from deep inside diskcache, a
long traceback that names no file. Every database call of `SearchCache` converts it into this one
line naming the cache directory and what to do about it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW

from mmsearch_gym.search.errors import CorruptCacheEntry

DATABASE_FILE = "cache.db"
_EMPTY_DATABASE_WAIT_S = 2.0


class UnsafeValue(Exception):
    """Raised by `BytesOnlyDisk` for stored data it will not decode (not an OSError: diskcache treats
    those as 'file vanished' and would return a miss)."""


class CorruptCache(CorruptCacheEntry, ValueError):
    """The cache's database file as a whole is unreadable (damaged, truncated or empty).

    A `CorruptCacheEntry` (so code that handles a corrupt entry handles this too) whose message names the
    cache directory instead of one key; also a `ValueError` (a bad file was given), so command lines that
    report bad inputs in one line report this one too."""

    def __init__(self, cache_path: str, reason: str) -> None:
        RuntimeError.__init__(self, f"search cache {cache_path!r} is corrupt: {reason}; restore it from a copy "
                                    "or a bundle (`mmsearch-gym cache import`), or delete it and record again")
        self.key = DATABASE_FILE
        self.reason = reason
        self.cache_path = cache_path


DATABASE_ERRORS = (sqlite3.Error, UnicodeDecodeError)
"""What a database call raises on a damaged file (SQLite decodes text columns, such as keys and
diskcache's settings, as UTF-8, so garbled text surfaces as UnicodeDecodeError)."""


def _one_line(text: str, limit: int = 200) -> str:
    """Garbled bytes quoted back by SQLite may hold newlines and control characters: escape and cut."""
    text = ascii(text)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."


def database_error(cache_path: str, error: Exception) -> Exception:
    """The one-line error for a failed database call: `CorruptCache` when the file is damaged; a lock
    timeout or another operational failure says so and names the cache."""
    text = _one_line(str(error) or type(error).__name__)
    if isinstance(error, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return TimeoutError(f"search cache {cache_path!r} stayed locked by another process: {text}")
    if isinstance(error, (sqlite3.DatabaseError, UnicodeDecodeError)):
        return CorruptCache(cache_path, f"{DATABASE_FILE} cannot be read ({text})")
    return RuntimeError(f"search cache {cache_path!r}: database call failed ({text})")


def refuse_empty_database(directory: Path, *, wait: bool) -> None:
    """Refuse a zero-byte ``cache.db``: SQLite would silently turn it into a new, empty cache, and a
    replay would then miss everything instead of saying that the recording is gone.

    wait: give a concurrent creator (SQLite makes the file empty, then writes its header) a moment
    before deciding; used when this process may create the cache itself."""
    database = directory / DATABASE_FILE
    deadline = time.monotonic() + (_EMPTY_DATABASE_WAIT_S if wait else 0.0)
    while True:
        try:
            if database.stat().st_size > 0:
                return
        except FileNotFoundError:
            return
        if time.monotonic() >= deadline:
            raise CorruptCache(str(directory), f"{DATABASE_FILE} is empty (0 bytes); the recording it held is "
                                               "lost")
        time.sleep(0.05)


class BytesOnlyDisk(diskcache.Disk):
    """A diskcache `Disk` that stores str keys and bytes values only, and never unpickles."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"search cache keys are strings, got {type(key).__name__}")
        return super().put(key)  # type: ignore[no-any-return]

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise UnsafeValue("a key is stored as a pickle; refusing to unpickle it")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError(f"search cache values are bytes, got {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_RAW and not isinstance(value, bytes):
            raise UnsafeValue(f"value stored as {type(value).__name__}, not bytes")
        if mode not in (MODE_RAW, MODE_BINARY):
            raise UnsafeValue(f"value stored in diskcache mode {mode} (pickle or text); refusing to read it")
        return super().fetch(mode, filename, value, read)


__all__ = ["BytesOnlyDisk", "CorruptCache", "DATABASE_ERRORS", "DATABASE_FILE", "UnsafeValue", "database_error",
           "refuse_empty_database"]
