"""`CombinedSearch`: one `SearchBackend` from an image backend and a text backend.

Why: the environment takes a single backend, while the live image and text tools come from different
services (e.g. Google Lens through SerpApi for images, SearXNG for text).
"""

from __future__ import annotations

from typing import Any

from mmsearch_gym.search.costs import usage_of
from mmsearch_gym.search.types import QueryImage, SearchResults

__all__ = ["CombinedSearch", "mode_of"]


def mode_of(backend: Any) -> str:
    """How `backend` searches: a cache wrapper's `mode` (replay, replay_or_empty, record, live), or
    "live" for a backend called directly (its results are computed when asked)."""
    mode = getattr(backend, "mode", None)
    return mode if isinstance(mode, str) else "live"


class CombinedSearch:
    """One `SearchBackend` from an image backend and a text backend (the environment takes a single
    backend): e.g. ``CombinedSearch(SerpApiImageSearch(...), SerpApiTextSearch(...))`` or Lens images
    with SearXNG text. Its id joins both ids; `usage()` merges their meters (a shared meter once).
    Its `mode` is the two sides' common mode, or both named when they differ (images replayed from a
    bundle, text from a local index: ``image=replay;text=live``), so a run manifest says neither
    "replay" nor "live" for a run that is half of each."""

    def __init__(self, image: Any, text: Any) -> None:
        for label, backend in (("image", image), ("text", text)):
            if not (hasattr(backend, "backend_id") and callable(getattr(backend, f"{label}_search", None))):
                raise ValueError(f"{label} must be a backend with backend_id and {label}_search(), got {backend!r}")
        self.image, self.text = image, text

    @property
    def backend_id(self) -> str:
        return f"combined(image={self.image.backend_id};text={self.text.backend_id})"

    @property
    def mode(self) -> str:
        image, text = mode_of(self.image), mode_of(self.text)
        return image if image == text else f"image={image};text={text}"

    @property
    def parts(self) -> tuple[Any, Any]:
        """The (image, text) backends, for whoever must look at each side (e.g. the cache a run replays)."""
        return (self.image, self.text)

    def __repr__(self) -> str:
        return f"CombinedSearch({self.backend_id})"

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults:
        return self.image.image_search(image, top_k)

    def text_search(self, query: str, top_k: int) -> SearchResults:
        return self.text.text_search(query, top_k)

    def usage(self) -> dict[str, object]:
        meters = []
        for backend in (self.image, self.text):
            for owner in (backend, getattr(backend, "reader", None), getattr(backend, "summarizer", None)):
                meters.append(getattr(owner, "meter", None))
        return usage_of(*meters)

    def close(self) -> None:
        for backend in (self.image, self.text):
            if callable(getattr(backend, "close", None)):
                backend.close()
