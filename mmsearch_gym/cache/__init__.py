"""The search cache (DESIGN §6): content-addressed results on diskcache, record/replay around any
backend, and portable bundles.

Why its own package: caching is a policy around search, not part of any backend, so `search/` knows
nothing of it and every backend gets record/replay for free.
"""

from mmsearch_gym.cache.backend import CACHE_MODES, CachedSearchBackend, CachedSearchStats
from mmsearch_gym.cache.bundle import (
    BundleConflict, BundleError, BundleFormatError, BundleHashMismatch, BundleInfo, BundleLimits,
    BundleTooLarge, UnsafeBundleMember, cache_content_sha256, export_bundle, import_bundle, open_bundle_cache,
    open_cache, verify_bundle, verify_cache_content,
)
from mmsearch_gym.cache.disk import CorruptCache
from mmsearch_gym.cache.modes import SEARCH_MODES, SearchMode
from mmsearch_gym.cache.store import CacheEntry, CacheStats, SearchCache
from mmsearch_gym.search.errors import CacheMiss, CorruptCacheEntry

__all__ = [
    "CACHE_MODES", "SEARCH_MODES", "BundleConflict", "BundleError", "BundleFormatError", "BundleHashMismatch",
    "BundleInfo", "BundleLimits", "BundleTooLarge", "CacheEntry", "CacheMiss", "CacheStats", "CachedSearchBackend",
    "CachedSearchStats", "CorruptCache", "CorruptCacheEntry", "SearchCache", "SearchMode", "UnsafeBundleMember",
    "cache_content_sha256", "export_bundle", "import_bundle", "open_bundle_cache", "open_cache", "verify_bundle",
    "verify_cache_content",
]
