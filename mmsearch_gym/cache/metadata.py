"""The cache's own metadata, stored next to the entries under ``meta|`` keys.

- ``meta|format``: which format and version wrote the directory, so a newer or foreign layout is
  refused with a message instead of being misread.
- ``meta|backend_ids``: the sorted backend ids of the entries, kept up to date by every write. Why:
  replaying without naming a backend needs the recorded ids, and walking every key to find them made
  each environment creation O(entries) (perf/env_startup.py measures the difference).

Metadata keys never enter bundles: bundles carry entries and thumbnails only, so their bytes and hash
do not depend on it.
"""

from __future__ import annotations

import json

from mmsearch_gym.cache.keys import META_PREFIX
from mmsearch_gym.cache.serialize import canonical_json
from mmsearch_gym.search.errors import CorruptCacheEntry

CACHE_FORMAT = "mmsearch-gym-search-cache"
CACHE_FORMAT_VERSION = 1
FORMAT_KEY = META_PREFIX + "format"
BACKEND_IDS_KEY = META_PREFIX + "backend_ids"
FORMAT_VALUE = canonical_json({"format": CACHE_FORMAT, "version": CACHE_FORMAT_VERSION})


def check_format_marker(marker: bytes, cache_path: str) -> None:
    """ValueError naming the format found when `marker` is not this version's."""
    if marker == FORMAT_VALUE:
        return
    try:
        found = json.loads(marker.decode("utf-8"))
    except ValueError:
        found = marker[:80]
    raise ValueError(f"search cache {cache_path!r} has format {found!r}; this mmsearch-gym reads "
                     f"{CACHE_FORMAT!r} version {CACHE_FORMAT_VERSION}")


def encode_backend_ids(backend_ids: set[str]) -> bytes:
    return canonical_json(sorted(backend_ids))


def decode_backend_ids(stored: bytes | None, cache_path: str) -> set[str] | None:
    """The recorded backend ids (None: the cache predates the metadata); CorruptCacheEntry if garbled."""
    if stored is None:
        return None
    try:
        ids = json.loads(stored.decode("utf-8"))
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not all(isinstance(item, str) for item in ids):
        raise CorruptCacheEntry(BACKEND_IDS_KEY, "not a JSON list of backend ids", cache_path)
    return set(ids)


__all__ = ["BACKEND_IDS_KEY", "CACHE_FORMAT", "CACHE_FORMAT_VERSION", "FORMAT_KEY", "FORMAT_VALUE",
           "check_format_marker", "decode_backend_ids", "encode_backend_ids"]
