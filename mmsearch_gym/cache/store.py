"""`SearchCache`: a content-addressed store of search results on diskcache (DESIGN §6).

Why diskcache: one directory holding a SQLite database that several processes (vector envs,
evaluation workers) can read and write at once, with transactions. How it is used here:

- Only bytes are ever stored, through `disk.BytesOnlyDisk`: a cache directory from elsewhere can never
  run code. A damaged, truncated or empty ``cache.db`` is a one-line `disk.CorruptCache` naming the
  directory, never a SQLite traceback, and an empty one is never silently re-created.
- Entries are canonical JSON with a checksum (`serialize`); thumbnails live once each under
  ``img|<sha256>``, so identical thumbnails dedupe and every value stays below `disk_min_file_size`,
  inside the database (values stored as separate files are ~2x slower to read: docs/measured-floors.md).
- Eviction is off: a recorded cache is data, not a best-effort cache, and must not silently lose entries.
- Recording is first-writer-wins (`add`): when several processes record the same search at once,
  the first stored result stays and every writer gets it back, so what each run saw is what replays.
- The backend ids are kept in metadata (`metadata`), so opening a cache for replay is O(1).
- A hit is one indexed SELECT; a parsed result is reused while its stored bytes stay the same (`hits`);
  every hit still reads the database, so rewrites by another process are seen.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import diskcache
from diskcache.core import MODE_RAW

from mmsearch_gym.cache.disk import DATABASE_ERRORS, DATABASE_FILE, BytesOnlyDisk, UnsafeValue, database_error
from mmsearch_gym.cache.disk import refuse_empty_database
from mmsearch_gym.cache.hits import ConnectionHandle, Hit
from mmsearch_gym.cache.keys import ENTRY_PREFIX, IMAGE_PREFIX, cached_query_digest, entry_key, image_blob_key
from mmsearch_gym.cache.keys import query_identity
from mmsearch_gym.cache.listing import CacheEntry, CacheStats, key_parts, scan_backend_ids, summarize
from mmsearch_gym.cache.metadata import (
    BACKEND_IDS_KEY, CACHE_FORMAT, CACHE_FORMAT_VERSION, FORMAT_KEY, FORMAT_VALUE, check_format_marker,
    decode_backend_ids, encode_backend_ids,
)
from mmsearch_gym.cache.serialize import check_image_blob, decode_stored_entry, encode_entry, sha256_hex
from mmsearch_gym.cache.serialize import unwrap_entry, wrap_entry
from mmsearch_gym.checks import require_int
from mmsearch_gym.search.errors import CorruptCacheEntry
from mmsearch_gym.search.types import QueryImage, SearchResults

DISK_MIN_FILE_SIZE = 8 * 2**20
"""Values below this stay inside SQLite (diskcache's default is 32 KiB; set explicitly, see above)."""
DEFAULT_MEMO_ENTRIES = 256

_TEXT_KEY_MEMO = 4096
_SELECT = "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
# The hot path reads only values stored inline as bytes (mode 1); anything else goes through `_read`.
_SELECT_INLINE = "SELECT value FROM Cache WHERE key = ? AND raw = 1 AND mode = 1"


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
        may_create = create and not readonly
        if not may_create and not (path / DATABASE_FILE).is_file():
            raise FileNotFoundError(f"no search cache at {str(path)!r}")
        self._memo_entries = require_int("memo_entries", memo_entries, low=0)
        refuse_empty_database(path, wait=may_create)
        self._path = str(path)
        self._readonly = readonly
        self._memo: dict[str, Hit] = {}
        self._memo_lock = threading.Lock()
        self._known_backend_ids: set[str] = set()
        try:
            self._cache = diskcache.Cache(
                self._path, timeout=timeout, disk=BytesOnlyDisk, eviction_policy="none",
                disk_min_file_size=DISK_MIN_FILE_SIZE, statistics=0, tag_index=0)
        except DATABASE_ERRORS as error:
            raise database_error(self._path, error) from None
        self._fast_select = hasattr(type(self._cache), "_con")
        self._local = ConnectionHandle()
        self._text_keys: dict[tuple[str, str, int], str] = {}
        try:
            self._check_format()
        except DATABASE_ERRORS as error:
            self._cache.close()
            raise database_error(self._path, error) from None
        except BaseException:
            self._cache.close()
            raise

    def _check_format(self) -> None:
        marker = self._read(FORMAT_KEY)
        if marker is None and not self._readonly:
            with self.transaction():
                marker = self._read(FORMAT_KEY)
                if marker is None and not len(self._cache):  # a new cache: mark it ours
                    self._set(FORMAT_KEY, FORMAT_VALUE)
                    self._set(BACKEND_IDS_KEY, encode_backend_ids(set()))
                    return
        if marker is None:
            if len(self._cache):
                raise ValueError(f"{self._path!r} is a diskcache directory but not an mmsearch-gym search cache")
            return  # an empty read-only cache
        check_format_marker(marker, self._path)

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
                    return self._cache.disk.fetch(mode, filename, value, False)  # type: ignore[no-any-return]
                except OSError:  # a value file removed by another process since the SELECT
                    return None
            return self._cache.get(key)  # type: ignore[no-any-return]
        except UnsafeValue as error:
            raise CorruptCacheEntry(key, str(error), self._path) from None
        except DATABASE_ERRORS as error:
            raise database_error(self._path, error) from None

    def _set(self, key: str, value: bytes) -> None:
        try:
            self._cache.set(key, value, retry=True)
        except DATABASE_ERRORS as error:
            raise database_error(self._path, error) from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the cache's write lock: reads and writes inside are atomic, and an exception rolls
        every write back."""
        try:
            with self._cache.transact(retry=True):
                yield
        except DATABASE_ERRORS as error:
            raise database_error(self._path, error) from None

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
        """Store an already validated payload under `key` (its thumbnails must be written too), and
        its backend id in the metadata."""
        self._writable()
        backend_id = key_parts(key, self._path).backend_id
        with self.transaction():
            self._set(key, wrap_entry(key, payload))
            if backend_id not in self._known_backend_ids:
                recorded = self._stored_backend_ids()
                if recorded is None:  # written before the metadata existed: computed once, here
                    recorded = scan_backend_ids(self._all_keys(), self._path)
                if backend_id not in recorded:
                    recorded.add(backend_id)
                    self._set(BACKEND_IDS_KEY, encode_backend_ids(recorded))
                self._known_backend_ids = recorded  # ids are never removed, so this stays true
        self._memo.pop(key, None)

    def write_image(self, sha: str, data: bytes) -> None:
        """Store thumbnail bytes under their hash, repairing a damaged copy if one is there."""
        self._writable()
        if sha256_hex(data) != sha:
            raise ValueError(f"image bytes do not hash to {sha!r}")
        existing = self._read(image_blob_key(sha))
        if existing is None or sha256_hex(existing) != sha:
            self._set(image_blob_key(sha), bytes(data))

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
        return entry_key(backend_id, kind, query_identity(kind, query_or_digest)[0], top_k)

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
            try:
                row = local.execute(_SELECT_INLINE, (key,)).fetchone()
            except DATABASE_ERRORS as error:
                raise database_error(self._path, error) from None
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
        hit = Hit(stored, record, images)
        if self._memo_entries:
            with self._memo_lock:
                while len(self._memo) >= self._memo_entries:
                    self._memo.pop(next(iter(self._memo)))
                self._memo[key] = hit
        return hit.results()

    def _encode(self, backend_id: str, kind: str, query_or_image: Any, top_k: int, results: SearchResults,
                image_url: str | None) -> tuple[str, bytes, dict[str, bytes]]:
        self._writable()
        digest, query = query_identity(kind, query_or_image)
        if image_url is None and isinstance(query_or_image, QueryImage):
            image_url = query_or_image.url
        key = entry_key(backend_id, kind, digest, top_k)
        payload, images = encode_entry(key, query, image_url, results)
        return key, payload, images

    def put(self, backend_id: str, kind: str, query_or_image: Any, top_k: int, results: SearchResults,
            *, image_url: str | None = None) -> str:
        """Store a successful search result, replacing any stored one; returns its key. Failed searches
        (`error` set) are refused. Recorders use `add`, where the first write wins."""
        key, payload, images = self._encode(backend_id, kind, query_or_image, top_k, results, image_url)
        with self.transaction():
            for sha, data in images.items():
                self.write_image(sha, data)
            self.write_payload(key, payload)
        return key

    def add(self, backend_id: str, kind: str, query_or_image: Any, top_k: int, results: SearchResults,
            *, image_url: str | None = None) -> tuple[SearchResults, bool]:
        """Store a successful search result unless the search is stored already (first writer wins,
        atomically across processes); returns what the cache holds afterwards (source "cache_hit") and
        whether this call stored it.

        Why: processes recording the same search at once get different live results; with
        last-writer-wins each would go on with its own while only one stays, so runs would not replay."""
        key, payload, images = self._encode(backend_id, kind, query_or_image, top_k, results, image_url)
        with self.transaction():
            added = self._read(key) is None
            if added:
                for sha, data in images.items():
                    self.write_image(sha, data)
                self.write_payload(key, payload)
        stored = self.get_by_key(key)
        if stored is None:  # pragma: no cover - entries are never deleted
            raise CorruptCacheEntry(key, "entry vanished right after it was stored", self._path)
        return stored, added

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._read(key) is not None

    # -- listing ---------------------------------------------------------------------------------------

    def _all_keys(self) -> Iterator[str]:
        try:
            for key in self._cache.iterkeys():
                if type(key) is not str:
                    raise CorruptCacheEntry(repr(key), "key is not a string", self._path)
                yield key
        except UnsafeValue as error:
            raise CorruptCacheEntry("<unknown>", str(error), self._path) from None
        except DATABASE_ERRORS as error:
            raise database_error(self._path, error) from None

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

    def _stored_backend_ids(self) -> set[str] | None:
        return decode_backend_ids(self._read(BACKEND_IDS_KEY), self._path)

    @property
    def has_backend_ids_metadata(self) -> bool:
        """Whether `backend_ids` is answered from metadata (False: a cache older than the metadata)."""
        return self._stored_backend_ids() is not None

    def backend_ids(self) -> list[str]:
        """The backend ids of the stored entries, from the metadata (O(1) in the number of entries).

        A cache written before the metadata existed is walked once, and the result stored unless the
        cache is read-only."""
        recorded = self._stored_backend_ids()
        if recorded is None:
            recorded = scan_backend_ids(self._all_keys(), self._path)
            if not self._readonly:
                with self.transaction():
                    if self._stored_backend_ids() is None:
                        self._set(BACKEND_IDS_KEY, encode_backend_ids(recorded))
        return sorted(recorded)

    def stats(self) -> CacheStats:
        try:
            size = int(self._cache.volume())
        except DATABASE_ERRORS as error:
            raise database_error(self._path, error) from None
        return summarize(self._path, self._all_keys(), size)

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


__all__ = ["BACKEND_IDS_KEY", "CACHE_FORMAT", "CACHE_FORMAT_VERSION", "CacheEntry", "CacheStats", "SearchCache"]
