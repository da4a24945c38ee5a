"""Turning the env's `search=` / `cache_path=` arguments into a `SearchBackend`.

Why mode strings only for replay: replaying needs nothing but recorded files, so ``search="replay"``
with a cache directory or bundle is enough. Recording or live search needs a real backend object, so
those are given as ``search=CachedSearchBackend(backend, cache_dir, mode="record")`` (or the backend
itself for live search) rather than guessed from a string.
"""

from __future__ import annotations

from typing import Any

from mmsearch_gym.search.types import SearchBackend

SEARCH_MODES = ("live", "record", "replay", "replay_or_empty")


def default_search() -> SearchBackend:
    """The search used with the default dataset and no `search=`: strict replay of the bundled suite's
    recorded cache. The bundled suite fills this in; until then it is a clear error."""
    raise ValueError(
        "no search backend: the bundled suite's recorded search cache is not available yet; pass "
        "search= a SearchBackend (e.g. mmsearch_gym.search.StaticSearchBackend(...)) or "
        "search='replay' with cache_path= a recorded cache directory or bundle")


def resolve_search(search: Any, cache_path: Any, dataset_is_default: bool) -> SearchBackend:
    """A backend object is used as it is; "replay"/"replay_or_empty" replay `cache_path` (a cache
    directory or bundle file); `search=None` replays `cache_path` strictly when one is given, else the
    default dataset's bundled cache."""
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
    if search is None:
        if cache_path is None:
            if dataset_is_default:
                return default_search()
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
