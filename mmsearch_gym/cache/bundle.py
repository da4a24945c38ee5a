"""Search cache bundles: one portable, verifiable file per cache (DESIGN §6).

This module keeps the public import path ``mmsearch_gym.cache.bundle``; the code lives by concept in
`bundle_format` (format, limits, errors, hash), `bundle_export`, `bundle_verify` (verify and import)
and `opening` (bundles as read-only caches, and checking an extracted copy against its bundle).
"""

from mmsearch_gym.cache.bundle_export import export_bundle
from mmsearch_gym.cache.bundle_format import (
    BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, CONFLICT_POLICIES, DEFAULT_LIMITS, MANIFEST_NAME, BundleConflict,
    BundleError, BundleFormatError, BundleHashMismatch, BundleInfo, BundleLimits, BundleTooLarge,
    UnsafeBundleMember, entries_sha256,
)
from mmsearch_gym.cache.bundle_verify import import_bundle, is_bundle_file, verify_bundle
from mmsearch_gym.cache.opening import (
    cache_content_sha256, default_bundle_work_dir, extracted_copy_dir, open_bundle_cache, open_cache,
    verify_cache_content,
)

__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "CONFLICT_POLICIES", "DEFAULT_LIMITS", "MANIFEST_NAME",
    "BundleConflict", "BundleError", "BundleFormatError", "BundleHashMismatch", "BundleInfo", "BundleLimits",
    "BundleTooLarge", "UnsafeBundleMember", "cache_content_sha256", "default_bundle_work_dir", "entries_sha256",
    "export_bundle", "extracted_copy_dir", "import_bundle", "is_bundle_file", "open_bundle_cache", "open_cache",
    "verify_bundle", "verify_cache_content",
]
