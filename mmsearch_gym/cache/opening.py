"""Opening a cache path: a cache directory, or a bundle file replayed through an extracted copy.

Why an extracted copy: replay needs indexed lookups, so a bundle is imported once into
``<work_dir>/<sha256 of the bundle file>`` (validated in full, then moved into place atomically, so
concurrent openers never see a half import) and reused by every later open.

Why `verify=True`: that copy lives in a user directory, and editing it would change what replays while
manifests still pin the bundle's hash. Verifying re-reads the bundle and recomputes the copy's content
hash (`cache_content_sha256`) against it, so whoever reports a result from a bundle (`validate`,
`mmsearch-gym cache verify`) checks the content it actually replays. It costs O(entries), so plain
environment creation does not do it; a verified copy is remembered per process until its files change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from mmsearch_gym.cache.bundle_format import (
    DEFAULT_LIMITS, BundleFormatError, BundleHashMismatch, BundleLimits, entries_sha256,
)
from mmsearch_gym.cache.bundle_verify import import_bundle, verify_bundle
from mmsearch_gym.cache.disk import DATABASE_FILE
from mmsearch_gym.cache.serialize import parse_payload, sha256_hex
from mmsearch_gym.cache.store import SearchCache

_FILE_HASHES: dict[tuple[str, int, int], str] = {}
_VERIFIED: set[tuple[object, ...]] = set()
_CONTENT_HASHES: dict[str, str] = {}  # sha256 of a bundle file's bytes -> its verified content hash


def default_bundle_work_dir() -> Path:
    """Where bundles opened as caches are imported: $MMSEARCH_GYM_HOME/bundles, else the user cache dir."""
    home = os.environ.get("MMSEARCH_GYM_HOME")
    if home:
        return Path(home).expanduser() / "bundles"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mmsearch-gym" / "bundles"


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) so that making many environments
    over one bundle reads it once per process."""
    status = path.stat()
    identity = (str(path.resolve()), status.st_size, status.st_mtime_ns)
    if identity in _FILE_HASHES:
        return _FILE_HASHES[identity]
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    _FILE_HASHES[identity] = hasher.hexdigest()
    return _FILE_HASHES[identity]


def extracted_copy_dir(path: str | os.PathLike[str], work_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where `open_bundle_cache` keeps (or will keep) the extracted copy of the bundle at `path`."""
    root = Path(work_dir) if work_dir is not None else default_bundle_work_dir()
    return root / _file_sha256(Path(path))[:32]


def cache_content_sha256(cache: SearchCache) -> str:
    """The bundle hash (`entries_sha256`) of what a cache holds. Every entry is read through its
    checksum and parsed, and every thumbnail it references is checked against its hash."""
    hashes = []
    for key in cache.keys():
        payload = cache.read_payload(key)
        if payload is None:
            continue
        for sha in parse_payload(payload, strict=False).thumbnails:
            cache.read_image(sha, entry=key)
        hashes.append((key, sha256_hex(payload)))
    return entries_sha256(hashes)


def _identity(directory: Path, expected_sha256: str) -> tuple[object, ...]:
    files = [file for file in sorted(directory.glob(DATABASE_FILE + "*")) if not file.name.endswith("-shm")]
    return (str(directory.resolve()), expected_sha256,
            tuple((file.name, file.stat().st_size, file.stat().st_mtime_ns) for file in files))


def verify_cache_content(cache: SearchCache, expected_sha256: str) -> None:
    """`BundleHashMismatch` naming the cache unless its content hashes to `expected_sha256` (a bundle's
    `BundleInfo.sha256`)."""
    identity = _identity(Path(cache.directory), expected_sha256)
    if identity in _VERIFIED:
        return
    actual = cache_content_sha256(cache)
    if actual != expected_sha256:
        raise BundleHashMismatch(
            f"search cache {cache.directory!r} holds content hashing to {actual}, but the bundle it stands for "
            f"hashes to {expected_sha256}: it was changed after extraction; delete that directory and open the "
            "bundle again")
    _VERIFIED.add(identity)


def _record_metadata(directory: Path) -> None:
    """Give a copy extracted by an older version its backend-id metadata (once), so opening it stays O(1)."""
    try:
        with SearchCache(directory, create=False, memo_entries=0) as cache:
            cache.backend_ids()
    except OSError:  # a read-only work directory: the copy keeps working, just without the shortcut
        pass


def open_bundle_cache(path: str | os.PathLike[str], work_dir: str | os.PathLike[str] | None = None,
                      limits: BundleLimits = DEFAULT_LIMITS, *, verify: bool = False) -> SearchCache:
    """A read-only `SearchCache` with a bundle's entries (see the module doc).

    verify: also re-verify the bundle and check that the extracted copy holds exactly its content
    (`BundleHashMismatch` naming the copy otherwise)."""
    bundle = Path(path)
    if not bundle.is_file():
        raise BundleFormatError(f"bundle {str(bundle)!r} does not exist or is not a file")
    final = extracted_copy_dir(bundle, work_dir)
    root = final.parent
    if not (final / DATABASE_FILE).is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{final.name[:12]}-", dir=root))
        try:
            with SearchCache(staging / "cache") as cache:
                import_bundle(bundle, cache, limits=limits)
            try:
                os.rename(staging / "cache", final)
            except OSError:
                if not (final / DATABASE_FILE).is_file():  # not a lost race with another importer
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    cache = SearchCache(final, readonly=True)
    try:
        if not cache.has_backend_ids_metadata:
            _record_metadata(final)
        if verify:
            file_sha = _file_sha256(bundle)
            if file_sha not in _CONTENT_HASHES:  # the same bytes always verify to the same content hash
                _CONTENT_HASHES[file_sha] = verify_bundle(bundle, limits).sha256
            verify_cache_content(cache, _CONTENT_HASHES[file_sha])
    except BaseException:
        cache.close()
        raise
    return cache


def open_cache(path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True,
               work_dir: str | os.PathLike[str] | None = None, verify: bool = False) -> SearchCache:
    """A cache directory or a bundle file (bundles open read-only; `verify` as in `open_bundle_cache`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"cache_path must be a cache directory or a bundle file, got {type(path).__name__}")
    candidate = Path(path).expanduser()
    if candidate.is_file():
        if not zipfile.is_zipfile(candidate):
            raise ValueError(f"cache_path {str(candidate)!r} is a file but not a search cache bundle")
        return open_bundle_cache(candidate, work_dir=work_dir, verify=verify)
    return SearchCache(candidate, readonly=readonly, create=create)


__all__ = [
    "cache_content_sha256", "default_bundle_work_dir", "extracted_copy_dir", "open_bundle_cache", "open_cache",
    "verify_cache_content",
]
