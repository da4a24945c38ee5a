"""Search backends: the protocol and result types, result rendering, and the backends."""

from mmsearch_gym.search.keys import image_digest, normalize_query, query_digest
from mmsearch_gym.search.static import StaticSearchBackend
from mmsearch_gym.search.types import EncodedImage, QueryImage, SearchBackend, SearchItem, SearchResults

__all__ = [
    "EncodedImage", "QueryImage", "SearchBackend", "SearchItem", "SearchResults", "StaticSearchBackend",
    "image_digest", "normalize_query", "query_digest",
]
