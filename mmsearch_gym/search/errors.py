"""Errors a cached search raises that must reach the user instead of becoming a tool error.

Why here and not in `cache/`: the environment turns any backend exception into a tool-error message
shown to the model (a backend must never crash an episode). A strict-replay miss or a corrupt cache
entry is not the model's fault and must not be hidden that way, so the environment needs to name
these classes to re-raise them, without importing the cache layer (dependencies point from `cache`
to `search`, never back, DESIGN §1).
"""

from __future__ import annotations


class CacheMiss(LookupError):
    """A strict replay found no recorded result for a search.

    The message names the cache key, the query text or image digest, the backend id and how to
    record the search; the same facts are available as attributes.
    """

    def __init__(self, message: str, *, key: str, backend_id: str, kind: str, top_k: int,
                 query: str | None = None, image_digest: str | None = None,
                 cache_path: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.backend_id = backend_id
        self.kind = kind
        self.top_k = top_k
        self.query = query
        self.image_digest = image_digest
        self.cache_path = cache_path

    def __str__(self) -> str:  # LookupError would repr() a single argument; keep the plain text
        return str(self.args[0])


class CorruptCacheEntry(RuntimeError):
    """A stored cache entry failed its checksum or could not be decoded.

    Raised instead of returning a result that might be silently wrong; `key` names the entry.
    """

    def __init__(self, key: str, reason: str, cache_path: str | None = None) -> None:
        where = f" in search cache {cache_path!r}" if cache_path else ""
        super().__init__(f"corrupt search cache entry {key!r}{where}: {reason}")
        self.key = key
        self.reason = reason
        self.cache_path = cache_path
