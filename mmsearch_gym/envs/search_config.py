"""Turning the env's `search=` / `cache_path=` arguments into a `SearchBackend`.

Why mode strings only for replay: replaying needs nothing but recorded files, so ``search="replay"``
with a cache directory or bundle is enough. Recording or live search needs a real backend object, so
those are given as ``search=CachedSearchBackend(backend, cache_dir, mode="record")`` (or the backend
itself for live search) rather than guessed from a string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmsearch_gym.cache.modes import SEARCH_MODES
from mmsearch_gym.search.types import SearchBackend


def resolve_search(search: Any, cache_path: Any, default_cache: Path | None = None) -> SearchBackend:
    """A backend object is used as it is; "replay"/"replay_or_empty" replay `cache_path` (a cache
    directory or bundle file), or `default_cache` (the named suite's bundled recording) when no
    `cache_path` is given; `search=None` means strict replay."""
    if search is not None and not isinstance(search, str):
        if not isinstance(search, SearchBackend):
            raise ValueError(
                f"search must be a SearchBackend (backend_id, image_search, text_search) or one of "
                f"{SEARCH_MODES}, got {type(search).__name__}")
        if cache_path is not None:
            raise ValueError(
                f"cache_path={cache_path!r} is only used with search='replay' or 'replay_or_empty'; to "
                "record a backend's searches pass search=mmsearch_gym.cache.CachedSearchBackend(backend, "
                "cache_path, mode='record')")
        return search
    if cache_path is None:
        cache_path = default_cache
    if search is None:
        if cache_path is None:
            raise ValueError(
                "no search backend: pass search= a SearchBackend such as "
                "mmsearch_gym.search.StaticSearchBackend(...), or search='replay' with cache_path= a "
                "recorded cache directory or bundle")
        search = "replay"
    if search not in SEARCH_MODES:
        raise ValueError(f"unknown search mode {search!r}; use one of {SEARCH_MODES} or a SearchBackend")
    if search in ("record", "live"):
        raise ValueError(
            f"search={search!r} needs a live backend: pass search=mmsearch_gym.cache.CachedSearchBackend("
            f"backend, cache_path, mode={search!r})" + (" or the backend itself" if search == "live" else ""))
    if cache_path is None:
        raise ValueError(f"search={search!r} needs cache_path= a recorded search cache directory or bundle file")
    from mmsearch_gym.cache.backend import CachedSearchBackend  # envs -> cache; imported when used

    return CachedSearchBackend.replay(cache_path, mode=search)
