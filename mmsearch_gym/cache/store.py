"""`SearchCache`: a content-addressed store of search results on diskcache (DESIGN §6).

Why diskcache: one directory holding a SQLite database that several processes (vector envs,
evaluation workers) can read and write at once, with transactions. How it is used here:

- Only bytes are ever stored, through `BytesOnlyDisk`, which refuses to write anything diskcache would
  pickle and refuses to read anything stored as a pickle: a cache directory from elsewhere can never
  run code.
- Entries are canonical JSON with a checksum (`serialize`); thumbnails live once each under
  ``img|<sha256>``, so identical thumbnails dedupe and every value stays below `disk_min_file_size`,
  inside the database (values stored as separate files are ~2x slower to read,
  docs/measured-floors.md).
- Eviction is off: a recorded cache is data, not a best-effort cache, and must not silently lose entries.
- A hit reads the entry with one indexed SELECT and, when its bytes equal those of a recent hit, reuses
  the already parsed result (thumbnail bytes are content-addressed and immutable, so they are kept
  with it). Every hit still reads the database, so entries rewritten by another process are seen.
  Thumbnails are handed out as fresh `EncodedImage` objects that decode lazily on first access, so
  the memo never holds decoded pixels.
"""

from __future__ import annotations

import json
import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ContextManager, Iterator

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW

from mmsearch_gym.cache.keys import (
    ENTRY_PREFIX, IMAGE_PREFIX, cached_query_digest, entry_key, image_blob_key, parse_entry_key,
    query_identity,
)
from mmsearch_gym.cache.serialize import (
    EntryRecord, canonical_json, check_image_blob, decode_stored_entry, encode_entry, sha256_hex,
    unwrap_entry, wrap_entry,
)
from mmsearch_gym.search.errors import CorruptCacheEntry
from mmsearch_gym.search.types import QueryImage, SearchResults

CACHE_FORMAT = "mmsearch-gym-search-cache"
CACHE_FORMAT_VERSION = 1
FORMAT_KEY = "meta|format"
DISK_MIN_FILE_SIZE = 8 * 2**20
"""Values below this stay inside SQLite (diskcache's default is 32 KiB; set explicitly, see above)."""
DEFAULT_MEMO_ENTRIES = 256

_FORMAT_VALUE = canonical_json({"format": CACHE_FORMAT, "version": CACHE_FORMAT_VERSION})
_TEXT_KEY_MEMO = 4096
_SELECT = "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
# The hot path reads only values stored inline as bytes (mode 1); anything else goes through `_read`.
_SELECT_INLINE = "SELECT value FROM Cache WHERE key = ? AND raw = 1 AND mode = 1"


class _UnsafeValue(Exception):
    """Raised by `BytesOnlyDisk` for stored data it will not decode (not an OSError: diskcache treats
    those as 'file vanished' and would return a miss)."""


class BytesOnlyDisk(diskcache.Disk):
    """A diskcache `Disk` that stores str keys and bytes values only, and never unpickles."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError(f"search cache keys are strings, got {type(key).__name__}")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise _UnsafeValue("a key is stored as a pickle; refusing to unpickle it")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError(f"search cache values are bytes, got {type(value).__name__}")
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_RAW and not isinstance(value, bytes):
            raise _UnsafeValue(f"value stored as {type(value).__name__}, not bytes")
        if mode not in (MODE_RAW, MODE_BINARY):
            raise _UnsafeValue(f"value stored in diskcache mode {mode} (pickle or text); refusing to read it")
        return super().fetch(mode, filename, value, read)


@dataclass(frozen=True)
class CacheEntry:
    """One cached search, as listed by `SearchCache.entries()`."""

    key: str
    backend_id: str
    kind: str
    top_k: int
    query: str | None
    image_digest: str | None
    image_url: str | None
    results: SearchResults


@dataclass(frozen=True)
class CacheStats:
    """What a cache holds: entries by backend id and kind, distinct thumbnails, bytes on disk."""

    directory: str
    entries: int
    images: int
    size_bytes: int
    by_backend: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def backend_ids(self) -> list[str]:
        return sorted(self.by_backend)


class _ConnectionHandle(threading.local):
    """This thread's handle on diskcache's SQLite connection, and the process it belongs to.

    Set by every `_read` from diskcache's own fork-aware, per-thread connection; the hot path uses it
    only while the process id still matches (a forked child goes through `_read` again)."""

    pid: int = -1
    execute: Any = None


class _Hit:
    """A parsed entry kept for reuse while its stored bytes stay the same."""

    __slots__ = ("stored", "record", "images", "shared")

    def __init__(self, stored: bytes, record: EntryRecord, images: dict[str, bytes]) -> None:
        self.stored = stored
        self.record = record
        self.images = images
        # Results without thumbnails hold no lazily decoded state, so one object can be shared.
        self.shared = None if images else record.to_results(images)

    def results(self) -> SearchResults:
        return self.shared if self.shared is not None else self.record.to_results(self.images)


def _reopen(directory: str, readonly: bool, memo_entries: int) -> SearchCache:
    return SearchCache(directory, readonly=readonly, create=False, memo_entries=memo_entries)


class SearchCache:
    """Search results keyed by content hashes, namespaced by backend id and top_k.

    directory: the cache directory (created unless `create=False` or `readonly=True`).
    readonly: refuse writes (used for caches imported from bundles).
    memo_entries: how many parsed hits to keep for reuse (0 disables the memo).
    Safe to share between threads and processes; use as a context manager or call `close()`.
    """

    def __init__(self, directory: str | os.PathLike[str], *, readonly: bool = False, create: bool = True,
                 memo_entries: int = DEFAULT_MEMO_ENTRIES, timeout: float = 60.0) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise ValueError(f"search cache directory must be a path, got {type(directory).__name__}")
        path = Path(directory).expanduser()
        if path.exists() and not path.is_dir():
            raise ValueError(f"search cache path {str(path)!r} is a file, not a cache directory "
                             "(a bundle? import it with `mmsearch-gym cache import`)")
        if (readonly or not create) and not (path / "cache.db").is_file():
            raise FileNotFoundError(f"no search cache at {str(path)!r}")
        if isinstance(memo_entries, bool) or not isinstance(memo_entries, int) or memo_entries < 0:
            raise ValueError(f"memo_entries must be a non-negative integer, got {memo_entries!r}")
        self._path = str(path)
        self._readonly = readonly
        self._memo_entries = memo_entries
        self._memo: dict[str, _Hit] = {}
        self._memo_lock = threading.Lock()
        self._cache = diskcache.Cache(
            self._path, timeout=timeout, disk=BytesOnlyDisk, eviction_policy="none",
            disk_min_file_size=DISK_MIN_FILE_SIZE, statistics=0, tag_index=0)
        self._fast_select = hasattr(type(self._cache), "_con")
        self._local = _ConnectionHandle()
        self._text_keys: dict[tuple[str, str, int], str] = {}
        try:
            self._check_format()
        except BaseException:
            self._cache.close()
            raise

    # -- opening --------------------------------------------------------------------------------------

    def _check_format(self) -> None:
        marker = self._read(FORMAT_KEY)
        if marker is None:
            if self._readonly:
                if len(self._cache):
                    raise ValueError(f"{self._path!r} is a diskcache directory but not an mmsearch-gym search cache")
                return
            with self.transaction():
                marker = self._read(FORMAT_KEY)
                if marker is None:
                    if len(self._cache):
                        raise ValueError(
                            f"{self._path!r} is a diskcache directory but not an mmsearch-gym search cache")
                    self._cache.set(FORMAT_KEY, _FORMAT_VALUE)
                    return
        if marker != _FORMAT_VALUE:
            try:
                found = json.loads(marker.decode("utf-8"))
            except ValueError:
                found = marker[:80]
            raise ValueError(f"search cache {self._path!r} has format {found!r}; this mmsearch-gym reads "
                             f"{CACHE_FORMAT!r} version {CACHE_FORMAT_VERSION}")

    @property
    def directory(self) -> str:
        return self._path

    @property
    def readonly(self) -> bool:
        return self._readonly

    # -- low-level reads and writes (also used by bundles) -------------------------------------------

    def _read(self, key: str) -> bytes | None:
        """The stored bytes under `key` (None when absent); one indexed SELECT on diskcache's table.

        diskcache's public `get` costs ~1.8x a raw SELECT for small values (perf/cache_hit.py); its
        per-thread, fork-aware connection is reused here and the public `get` is the fallback.
        """
        try:
            if self._fast_select:
                execute = self._cache._con.execute
                self._local.execute, self._local.pid = execute, os.getpid()
                row = execute(_SELECT, (key,)).fetchone()
                if row is None:
                    return None
                mode, filename, value = row
                if mode == MODE_RAW and type(value) is bytes:
                    return value
                try:
                    return self._cache.disk.fetch(mode, filename, value, False)
                except OSError:  # a value file removed by another process since the SELECT
                    return None
            return self._cache.get(key)
        except _UnsafeValue as error:
            raise CorruptCacheEntry(key, str(error), self._path) from None

    def transaction(self) -> ContextManager[None]:
        """Hold the cache's write lock: reads and writes inside are atomic, and an exception rolls
        every write back."""
        return self._cache.transact(retry=True)

    def _writable(self) -> None:
        if self._readonly:
            raise PermissionError(f"search cache {self._path!r} is read-only")

    def read_payload(self, key: str) -> bytes | None:
        """The verified JSON payload of entry `key` (None when absent; CorruptCacheEntry if damaged)."""
        stored = self._read(key)
        return None if stored is None else unwrap_entry(key, stored, self._path)

    def read_image(self, sha: str, entry: str | None = None) -> bytes:
        """Thumbnail bytes by hash (CorruptCacheEntry naming `entry` when missing or damaged)."""
        return check_image_blob(entry or image_blob_key(sha), sha, self._read(image_blob_key(sha)), self._path)

    def write_payload(self, key: str, payload: bytes) -> None:
        """Store an already validated payload under `key` (its thumbnails must be written too)."""
        self._writable()
        self._cache.set(key, wrap_entry(key, payload), retry=True)
        self._memo.pop(key, None)

    def write_image(self, sha: str, data: bytes) -> None:
        """Store thumbnail bytes under their hash, repairing a damaged copy if one is there."""
        self._writable()
        if sha256_hex(data) != sha:
            raise ValueError(f"image bytes do not hash to {sha!r}")
        existing = self._read(image_blob_key(sha))
        if existing is None or sha256_hex(existing) != sha:
            self._cache.set(image_blob_key(sha), bytes(data), retry=True)

    # -- the search API --------------------------------------------------------------------------------

    def key_for(self, backend_id: str, kind: str, query_or_digest: Any, top_k: int) -> str:
        """The entry key of a search: a text query, or an image (QueryImage, array, PIL image, encoded
        bytes, Path) or its 64-hex pixel digest."""
        if kind == "text" and type(query_or_digest) is str:
            memo_key = (backend_id, query_or_digest, top_k)
            key = self._text_keys.get(memo_key)
            if key is None:
                key = entry_key(backend_id, kind, cached_query_digest(query_or_digest), top_k)
                if len(self._text_keys) >= _TEXT_KEY_MEMO:
                    self._text_keys.clear()
                self._text_keys[memo_key] = key
            return key
        else:
            digest = query_identity(kind, query_or_digest)[0]
        return entry_key(backend_id, kind, digest, top_k)

    def get(self, backend_id: str, kind: str, query_or_digest: Any, top_k: int) -> SearchResults | None:
        """The cached results of a search (source="cache_hit"), or None when it was never stored."""
        key = None
        if kind == "text" and type(query_or_digest) is str:
            key = self._text_keys.get((backend_id, query_or_digest, top_k))
        return self.get_by_key(key or self.key_for(backend_id, kind, query_or_digest, top_k))

    def get_by_key(self, key: str) -> SearchResults | None:
        # The common case (a value inside the database) is inlined: this is the hot path of replay.
        local = self._local
        if self._fast_select and local.pid == os.getpid():
            row = local.execute(_SELECT_INLINE, (key,)).fetchone()
            stored = row[0] if row is not None and type(row[0]) is bytes else self._read(key)
        else:
            stored = self._read(key)
        if stored is None:
            return None
        hit = self._memo.get(key)
        if hit is not None and hit.stored == stored:
            shared = hit.shared
            return shared if shared is not None else hit.results()
        record = decode_stored_entry(key, stored, self._path)
        images = {sha: self.read_image(sha, entry=key) for sha in record.thumbnails}
        hit = _Hit(stored, record, images)
        if self._memo_entries:
            with self._memo_lock:
                while len(self._memo) >= self._memo_entries:
                    self._memo.pop(next(iter(self._memo)))
                self._memo[key] = hit
        return hit.results()

    def put(self, backend_id: str, kind: str, query_or_image: Any, top_k: int, results: SearchResults,
            *, image_url: str | None = None) -> str:
        """Store a successful search result; returns its key. Failed searches (`error` set) are refused."""
        self._writable()
        digest, query = query_identity(kind, query_or_image)
        if image_url is None and isinstance(query_or_image, QueryImage):
            image_url = query_or_image.url
        key = entry_key(backend_id, kind, digest, top_k)
        payload, images = encode_entry(key, query, image_url, results)
        with self.transaction():
            for sha, data in images.items():
                self.write_image(sha, data)
            self.write_payload(key, payload)
        return key

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._read(key) is not None

    # -- listing ---------------------------------------------------------------------------------------

    def _all_keys(self) -> Iterator[str]:
        try:
            for key in self._cache.iterkeys():
                if type(key) is not str:
                    raise CorruptCacheEntry(repr(key), "key is not a string", self._path)
                yield key
        except _UnsafeValue as error:
            raise CorruptCacheEntry("<unknown>", str(error), self._path) from None

    def keys(self) -> list[str]:
        """Entry keys in sorted order."""
        return [key for key in self._all_keys() if key.startswith(ENTRY_PREFIX)]

    def image_hashes(self) -> list[str]:
        return [key[len(IMAGE_PREFIX):] for key in self._all_keys() if key.startswith(IMAGE_PREFIX)]

    def get_entry(self, key: str) -> CacheEntry:
        """One entry with its metadata; KeyError naming the key when absent."""
        stored = self._read(key)
        if stored is None:
            raise KeyError(f"no entry {key!r} in search cache {self._path!r}")
        record = decode_stored_entry(key, stored, self._path)
        images = {sha: self.read_image(sha, entry=key) for sha in record.thumbnails}
        return CacheEntry(key=key, backend_id=record.backend_id, kind=record.kind, top_k=record.top_k,
                          query=record.query, image_digest=record.image_digest, image_url=record.image_url,
                          results=record.to_results(images))

    def entries(self) -> Iterator[CacheEntry]:
        """Every entry, sorted by key (entries removed while iterating are skipped)."""
        for key in self.keys():
            try:
                yield self.get_entry(key)
            except KeyError:
                continue

    def __iter__(self) -> Iterator[CacheEntry]:
        return self.entries()

    def __len__(self) -> int:
        return len(self.keys())

    def backend_ids(self) -> list[str]:
        return sorted({parse_entry_key(key).backend_id for key in self.keys()})

    def stats(self) -> CacheStats:
        by_backend: dict[str, dict[str, int]] = defaultdict(lambda: {"image": 0, "text": 0})
        entries = images = 0
        for key in self._all_keys():
            if key.startswith(ENTRY_PREFIX):
                parts = parse_entry_key(key)
                by_backend[parts.backend_id][parts.kind] += 1
                entries += 1
            elif key.startswith(IMAGE_PREFIX):
                images += 1
        return CacheStats(directory=self._path, entries=entries, images=images,
                          size_bytes=int(self._cache.volume()),
                          by_backend={name: dict(counts) for name, counts in sorted(by_backend.items())})

    # -- lifetime --------------------------------------------------------------------------------------

    def close(self) -> None:
        self._local.pid = -1
        self._cache.close()

    def __enter__(self) -> SearchCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reopen, (self._path, self._readonly, self._memo_entries))

    def __repr__(self) -> str:
        return f"SearchCache({self._path!r}{', readonly' if self._readonly else ''})"

