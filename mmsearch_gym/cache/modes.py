"""The search modes, named once: how an environment or a `CachedSearchBackend` uses the cache.

- ``live``: no cache, every search goes to the backend.
- ``record``: hits from the cache; misses call the backend and are stored (first writer wins).
- ``replay``: hits only; a miss raises `CacheMiss`.
- ``replay_or_empty``: a miss returns an empty result marked ``source="cache_miss_empty"``.
"""

from __future__ import annotations

from typing import Literal, get_args

SearchMode = Literal["live", "record", "replay", "replay_or_empty"]
SEARCH_MODES: tuple[SearchMode, ...] = get_args(SearchMode)
REPLAY_MODES: tuple[SearchMode, ...] = ("replay", "replay_or_empty")

__all__ = ["REPLAY_MODES", "SEARCH_MODES", "SearchMode"]
