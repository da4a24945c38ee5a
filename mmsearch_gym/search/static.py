"""`StaticSearchBackend`: answers searches from an in-memory mapping.

For tests, examples and scripted worlds: the environment is usable before any real backend exists,
and a test can say exactly what each search returns. Images are matched by their pixel digest,
queries by their normalised text (`search.keys`).
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

import numpy as np

from mmsearch_gym.imaging import ImageLike, load_rgb
from mmsearch_gym.search.keys import image_digest, normalize_query
from mmsearch_gym.search.types import QueryImage, SearchResults


def _results_fingerprint(results: SearchResults) -> str:
    hasher = hashlib.sha256(f"{results.kind}|{results.error}".encode())
    for item in results.items:
        hasher.update(f"|{item.title}|{item.url}|{item.snippet}|".encode())
        if item.thumbnail is not None:
            hasher.update(item.thumbnail.data)
    return hasher.hexdigest()


class StaticSearchBackend:
    """Search results from a fixed mapping.

    images: pairs of (image, results); the image may be anything `load_rgb` accepts.
    texts: query → results; queries match after NFKC normalisation, whitespace collapsing and
        case folding.
    default_image / default_text: returned when nothing matches (default: an empty result).
    At most `top_k` items of a stored result are returned.
    """

    def __init__(
        self,
        images: Iterable[tuple[ImageLike, SearchResults]] = (),
        texts: Mapping[str, SearchResults] | None = None,
        default_image: SearchResults | None = None,
        default_text: SearchResults | None = None,
    ) -> None:
        self._images: dict[str, SearchResults] = {}
        for image, results in images:
            self._images[image_digest(load_rgb(image))] = self._checked(results, "image")
        self._texts = {normalize_query(q): self._checked(r, "text") for q, r in (texts or {}).items()}
        self._default_image = self._checked(default_image or SearchResults("image"), "image")
        self._default_text = self._checked(default_text or SearchResults("text"), "text")
        self._backend_id: str | None = None

    @staticmethod
    def _checked(results: SearchResults, kind: str) -> SearchResults:
        if not isinstance(results, SearchResults) or results.kind != kind:
            raise ValueError(f"expected SearchResults of kind {kind!r}, got {results!r}")
        return results.with_source("static")

    @property
    def backend_id(self) -> str:
        if self._backend_id is None:
            hasher = hashlib.sha256()
            for key in sorted(self._images):
                hasher.update(f"i:{key}:{_results_fingerprint(self._images[key])}".encode())
            for key in sorted(self._texts):
                hasher.update(f"t:{key}:{_results_fingerprint(self._texts[key])}".encode())
            for default in (self._default_image, self._default_text):
                hasher.update(f"d:{_results_fingerprint(default)}".encode())
            self._backend_id = f"static:{hasher.hexdigest()[:16]}"
        return self._backend_id

    @staticmethod
    def _top(results: SearchResults, top_k: int) -> SearchResults:
        return SearchResults(results.kind, results.items[:max(0, top_k)], results.error, source="static")

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults:
        pixels = image.pixels if isinstance(image, QueryImage) else np.asarray(image)
        return self._top(self._images.get(image_digest(pixels), self._default_image), top_k)

    def text_search(self, query: str, top_k: int) -> SearchResults:
        return self._top(self._texts.get(normalize_query(query), self._default_text), top_k)
