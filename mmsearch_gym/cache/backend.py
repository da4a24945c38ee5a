"""`CachedSearchBackend`: record and replay around any search backend (DESIGN §6).

Why a wrapper: the environment only knows the `SearchBackend` protocol, so recording real searches
once and replaying them offline (for reproducible evaluation and cheap training) needs no change in
the environment or in the backends. Modes:

- ``live``: no cache, every search goes to the wrapped backend.
- ``record``: hits come from the cache; misses call the backend and store the result (failed searches,
  those with an `error`, are not stored, so they are retried next time). The first write of a search
  wins: when another process stored it meanwhile, that stored result is what this call returns, so
  every recorder goes on with exactly what will replay.
- ``replay``: hits only; a miss raises `CacheMiss` saying what was missing and how to record it.
- ``replay_or_empty``: a miss returns an empty result marked ``source="cache_miss_empty"``, which the
  environment counts in ``info["cache_misses"]``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmsearch_gym.cache.keys import cached_query_digest, check_top_k, entry_key, normalize_query
from mmsearch_gym.cache.modes import REPLAY_MODES, SEARCH_MODES, SearchMode
from mmsearch_gym.cache.opening import open_cache
from mmsearch_gym.cache.store import SearchCache
from mmsearch_gym.search.errors import CacheMiss
from mmsearch_gym.search.keys import image_digest
from mmsearch_gym.search.types import QueryImage, SearchBackend, SearchResults

CACHE_MODES = SEARCH_MODES
"""The modes (`modes.SEARCH_MODES`; this name is kept for existing imports)."""
RECORD_COMMAND = "mmsearch-gym cache record"
"""The command named in `CacheMiss` messages as the way to record a missing search."""


@dataclass
class CachedSearchStats:
    """Counts since the wrapper was made: cache hits, misses, calls to the live backend, results
    stored, live results not stored because they failed, and live results dropped because another
    writer had stored the same search first (the stored one was returned instead)."""

    hits: int = 0
    misses: int = 0
    live_calls: int = 0
    stored: int = 0
    not_stored: int = 0
    already_stored: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class CachedSearchBackend:
    """A `SearchBackend` that answers from a `SearchCache` according to `mode` (see the module doc).

    backend: the live backend; required for "live" and "record", optional for the replay modes.
    cache: a `SearchCache`, a cache directory, or (replay modes only) a bundle file.
    backend_id: the id entries are looked up under; defaults to the wrapped backend's (and must agree
        with it when both are given). For replay without a backend, see `CachedSearchBackend.replay`.
    """

    def __init__(self, backend: SearchBackend | None, cache: SearchCache | str | os.PathLike[str] | None,
                 mode: SearchMode = "record", *, backend_id: str | None = None) -> None:
        if mode not in CACHE_MODES:
            raise ValueError(f"mode must be one of {CACHE_MODES}, got {mode!r}")
        if backend is not None and not isinstance(backend, SearchBackend):
            raise ValueError("backend must be a SearchBackend (backend_id, image_search, text_search), got "
                             f"{type(backend).__name__}")
        if backend is None and mode in ("live", "record"):
            raise ValueError(f"mode {mode!r} needs a live backend to call; got backend=None")
        if cache is None and mode != "live":
            raise ValueError(f"mode {mode!r} needs a cache (a SearchCache, a cache directory or a bundle file)")
        if backend_id is None:
            if backend is None:
                raise ValueError(f"mode {mode!r} without a backend needs backend_id= (or use "
                                 "CachedSearchBackend.replay, which reads it from the cache)")
            backend_id = backend.backend_id
        elif backend is not None and backend.backend_id != backend_id:
            raise ValueError(f"backend_id {backend_id!r} differs from the wrapped backend's "
                             f"{backend.backend_id!r}")
        if not isinstance(backend_id, str) or not backend_id:
            raise ValueError(f"backend_id must be a non-empty string, got {backend_id!r}")
        self.mode = mode
        self.backend = backend
        self.cache_path: str | None = None
        self.cache: SearchCache | None
        if cache is None or isinstance(cache, SearchCache):
            self.cache = cache
        else:
            self.cache_path = os.fspath(cache)
            if mode == "record" and os.path.isfile(cache):
                raise ValueError(f"cannot record into {self.cache_path!r}: a bundle is read-only; import it "
                                 "into a cache directory first (`mmsearch-gym cache import`)")
            self.cache = open_cache(cache, create=mode == "record")
        if self.cache is not None and self.cache_path is None:
            self.cache_path = self.cache.directory
        if mode == "record" and self.cache is not None and self.cache.readonly:
            raise ValueError(f"cannot record into read-only search cache {self.cache_path!r}")
        self._backend_id = backend_id
        self.stats = CachedSearchStats()

    @classmethod
    def replay(cls, cache_path: SearchCache | str | os.PathLike[str], backend_id: str | None = None, *,
               mode: SearchMode = "replay", backend: SearchBackend | None = None,
               verify: bool = False) -> CachedSearchBackend:
        """Replay a cache directory or bundle without a live backend.

        backend_id: which recorded backend to replay; None uses the cache's only one (read from the
            cache's metadata, so this stays O(1) in the number of entries), and is an error naming the
            recorded ids when there are several (or none).
        verify: for a bundle, check that the extracted copy replayed holds exactly the bundle's content
            (`open_bundle_cache(verify=True)`); what a leaderboard validation should use."""
        if mode not in REPLAY_MODES:
            raise ValueError(f"replay mode must be 'replay' or 'replay_or_empty', got {mode!r}")
        if cache_path is None:
            raise ValueError("replay needs cache_path: a search cache directory or bundle file")
        if isinstance(cache_path, SearchCache):
            cache, label = cache_path, cache_path.directory
        else:
            cache, label = open_cache(cache_path, create=False, verify=verify), os.fspath(cache_path)
        if backend_id is None and backend is None:
            recorded = cache.backend_ids()
            if len(recorded) != 1:
                if cache is not cache_path:
                    cache.close()
                raise ValueError(
                    f"search cache {label!r} holds {len(recorded)} backend ids {recorded}; "
                    "pass backend_id= to choose one" if recorded else
                    f"search cache {label!r} holds no entries, so there is nothing to replay")
            backend_id = recorded[0]
        wrapper = cls(backend, cache, mode, backend_id=backend_id)
        wrapper.cache_path = label
        return wrapper

    @property
    def backend_id(self) -> str:
        return self._backend_id

    # -- the SearchBackend protocol --------------------------------------------------------------------

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults:
        if self.mode == "live":
            return self._live("image", image, top_k)
        digest = image.digest if isinstance(image, QueryImage) else image_digest(np.asarray(image))
        return self._search("image", image, digest, top_k)

    def text_search(self, query: str, top_k: int) -> SearchResults:
        if self.mode == "live":
            return self._live("text", query, top_k)
        if not isinstance(query, str):
            raise ValueError(f"a text query must be a string, got {type(query).__name__}")
        return self._search("text", query, cached_query_digest(query), top_k)

    def usage(self) -> dict[str, object] | None:
        """The wrapped live backend's billable calls and estimated cost (None when it does not count
        them, e.g. local retrieval or a pure replay): hits and replays cost nothing."""
        report = getattr(self.backend, "usage", None)
        return report() if callable(report) else None

    # -- internals -------------------------------------------------------------------------------------

    def _live(self, kind: str, query: Any, top_k: int) -> SearchResults:
        assert self.backend is not None
        self.stats.live_calls += 1
        if kind == "image":
            return self.backend.image_search(query, top_k)
        return self.backend.text_search(query, top_k)

    def _search(self, kind: str, query: Any, digest: str, top_k: int) -> SearchResults:
        assert self.cache is not None
        key = entry_key(self._backend_id, kind, digest, check_top_k(top_k))
        hit = self.cache.get_by_key(key)
        if hit is not None:
            self.stats.hits += 1
            return hit
        self.stats.misses += 1
        if self.mode == "record":
            results = self._live(kind, query, top_k)
            if isinstance(results, SearchResults) and results.kind == kind and results.error is None:
                stored, added = self.cache.add(self._backend_id, kind, query if kind == "text" else digest, top_k,
                                               results, image_url=getattr(query, "url", None))
                if added:
                    self.stats.stored += 1
                    return stored.with_source(results.source)
                self.stats.already_stored += 1
                return stored
            else:
                self.stats.not_stored += 1
            return results
        if self.mode == "replay_or_empty":
            return SearchResults(kind, (), None, source="cache_miss_empty")  # type: ignore[arg-type]
        raise self._miss(kind, key, query if kind == "text" else None, digest, top_k)

    def _miss(self, kind: str, key: str, query: str | None, digest: str, top_k: int) -> CacheMiss:
        what = (f"text query {query!r} (normalised {normalize_query(query)!r})" if query is not None
                else f"image digest {digest}")
        message = (
            f"strict replay: no cached {kind} search for {what}, backend {self._backend_id!r}, top_k {top_k} "
            f"(key {key!r}) in search cache {self.cache_path!r}. Record it with `{RECORD_COMMAND}` for this "
            f"backend (or CachedSearchBackend(<backend with id {self._backend_id!r}>, <cache dir>, "
            "mode='record')), or use mode 'replay_or_empty' to get an empty result for misses.")
        return CacheMiss(message, key=key, backend_id=self._backend_id, kind=kind, top_k=top_k,
                         query=query, image_digest=digest if query is None else None,
                         cache_path=self.cache_path)

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()

    def __repr__(self) -> str:
        return (f"CachedSearchBackend(mode={self.mode!r}, backend_id={self._backend_id!r}, "
                f"cache={self.cache_path!r})")
