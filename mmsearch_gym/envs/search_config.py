"""Turning the env's `search=` / `cache_path=` arguments into a `SearchBackend`."""

from __future__ import annotations

from typing import Any

from mmsearch_gym.search.types import SearchBackend

SEARCH_MODES = ("live", "record", "replay", "replay_or_empty")


def resolve_search(search: Any, cache_path: Any, dataset_is_default: bool) -> SearchBackend:
    """A backend object is used as it is; mode strings wrap a cache (see `mmsearch_gym.cache`)."""
    if search is not None and not isinstance(search, str):
        if not isinstance(search, SearchBackend):
            raise ValueError(
                f"search must be a SearchBackend (backend_id, image_search, text_search) or one of "
                f"{SEARCH_MODES}, got {type(search).__name__}")
        return search
    raise ValueError(
        "no search backend: pass search= a SearchBackend such as "
        "mmsearch_gym.search.StaticSearchBackend(...)"
        + ("" if search is None else f" (search mode {search!r} needs the search cache layer)")
    )
