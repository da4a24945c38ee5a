"""Search backends: the protocol and result types, result rendering, and the backends."""

from typing import TYPE_CHECKING

from mmsearch_gym.search.keys import image_digest, normalize_query, query_digest
from mmsearch_gym.search.static import StaticSearchBackend
from mmsearch_gym.search.types import EncodedImage, QueryImage, SearchBackend, SearchItem, SearchResults

if TYPE_CHECKING:
    from mmsearch_gym.search.local import LocalCorpusBackend

__all__ = [
    "EncodedImage", "LocalCorpusBackend", "QueryImage", "SearchBackend", "SearchItem", "SearchResults",
    "StaticSearchBackend", "WikiTextSearch",
    "image_digest", "normalize_query", "query_digest",
]


# Live backends, imported on first use: they need the optional `mmsearch-gym[serpapi]` extra
# (serpapi, httpx, tenacity, trafilatura), and the core package must import without it.
_LAZY = {
    "SerpApiImageSearch": "mmsearch_gym.search.serpapi", "SerpApiTextSearch": "mmsearch_gym.search.serpapi",
    "CombinedSearch": "mmsearch_gym.search.combined", "SearxngTextSearch": "mmsearch_gym.search.searxng",
    "JinaReader": "mmsearch_gym.search.reader", "LocalExtractor": "mmsearch_gym.search.reader",
    "ChatSummarizer": "mmsearch_gym.search.summarizer", "UsageMeter": "mmsearch_gym.search.costs",
    "HttpSettings": "mmsearch_gym.net.fetch", "RetryPolicy": "mmsearch_gym.net.retry",
    "WikiTextSearch": "mmsearch_gym.search.wiki",  # needs bm25s (`mmsearch-gym[local]`)
}


def __getattr__(name: str) -> object:
    """Import `LocalCorpusBackend` on first use: it needs the optional bm25s and imagehash
    (`mmsearch-gym[local]`), and the core package must import without them."""
    if name == "LocalCorpusBackend":
        from mmsearch_gym.search.local import LocalCorpusBackend

        return LocalCorpusBackend
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
