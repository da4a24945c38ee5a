"""What a search cache holds, as people and tools list it: one `CacheEntry` per search, `CacheStats` per
cache, and the backend ids it was recorded with.

Why apart from `store`: listing walks every key (O(entries)), while the store's job is the O(1) hit
path; keeping the walks here keeps that split visible. Backend ids are the exception that matters
for start-up cost: the store keeps them in its metadata (`store.BACKEND_IDS_KEY`), and
`scan_backend_ids` is only the one-time fallback for caches written before that metadata existed.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from mmsearch_gym.cache.keys import ENTRY_PREFIX, IMAGE_PREFIX, KeyParts, parse_entry_key
from mmsearch_gym.search.errors import CorruptCacheEntry
from mmsearch_gym.search.types import SearchResults


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


def key_parts(key: str, cache_path: str) -> KeyParts:
    """The fields of a stored entry key; a key garbled on disk is a `CorruptCacheEntry` naming the cache."""
    try:
        return parse_entry_key(key)
    except ValueError as error:
        raise CorruptCacheEntry(key, f"{error} (the database file is damaged)", cache_path) from None


def scan_backend_ids(keys: Iterable[str], cache_path: str) -> set[str]:
    """The backend ids of all entry keys: one pass over every key (O(entries))."""
    return {key_parts(key, cache_path).backend_id for key in keys if key.startswith(ENTRY_PREFIX)}


def summarize(directory: str, keys: Iterable[str], size_bytes: int) -> CacheStats:
    """`CacheStats` from every stored key (entry keys counted by backend and kind, thumbnails once)."""
    by_backend: dict[str, dict[str, int]] = defaultdict(lambda: {"image": 0, "text": 0})
    entries = images = 0
    for key in keys:
        if key.startswith(ENTRY_PREFIX):
            parts = key_parts(key, directory)
            by_backend[parts.backend_id][parts.kind] += 1
            entries += 1
        elif key.startswith(IMAGE_PREFIX):
            images += 1
    return CacheStats(directory=directory, entries=entries, images=images, size_bytes=size_bytes,
                      by_backend={name: dict(counts) for name, counts in sorted(by_backend.items())})


__all__ = ["CacheEntry", "CacheStats", "key_parts", "scan_backend_ids", "summarize"]
