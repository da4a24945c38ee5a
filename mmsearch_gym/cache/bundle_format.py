"""The search cache bundle format: names, limits, errors, the manifest, and the content hash.

Why a bundle: a benchmark result is only reproducible with the exact search results behind it, so a
cache must travel as one file whose hash a leaderboard can pin.

Format: an uncompressed zip holding ``manifest.json`` (format, version, backend ids, counts and a
sha256 over the sorted entries), ``entries/<sha256 of key>.json`` (the canonical JSON payload of one
entry) and ``images/<sha256>`` (thumbnail bytes, named by their hash). Determinism: fixed member
order, fixed timestamps and attributes and no compression, so the same cache always exports to the
same bytes (`bundle_export`). Safety: a bundle may come from anyone, so it is read only through
`mmsearch_gym.archives` (the one safe zip reader) and never unpickled (`bundle_verify`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mmsearch_gym.archives import ArchiveError, ArchiveLimits, open_archive, read_member
from mmsearch_gym.cache.serialize import canonical_json, sha256_hex
from mmsearch_gym.cache.store import SearchCache
from mmsearch_gym.checks import require_int

BUNDLE_FORMAT = "mmsearch-gym-search-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
CONFLICT_POLICIES = ("error", "keep", "replace")

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
ENTRY_NAME = re.compile(r"entries/([0-9a-f]{64})\.json")
IMAGE_NAME = re.compile(r"images/([0-9a-f]{64})")
_MANIFEST_FIELDS = frozenset({"format", "format_version", "backend_ids", "entry_count", "image_count", "sha256"})


class BundleError(ValueError):
    """A bundle was refused; `member` names the offending zip member when there is one."""

    def __init__(self, message: str, member: str | None = None) -> None:
        super().__init__(message)
        self.member = member


class BundleFormatError(BundleError):
    """Not a bundle, an unknown format version, or a malformed manifest or member."""


class BundleHashMismatch(BundleError):
    """Content does not match the hash the manifest or a member name declares."""


class UnsafeBundleMember(BundleError):
    """A member name or type that could escape a directory (absolute path, '..', link)."""


class BundleTooLarge(BundleError):
    """Too many members, or a member or the whole bundle over the size limits."""


class BundleConflict(BundleError):
    """The target cache already holds different results under a key the bundle brings."""


@dataclass(frozen=True)
class BundleLimits:
    """Ceilings checked against both the declared and the actually read sizes."""

    max_members: int = 2_000_000
    max_member_bytes: int = 64 * 2**20
    max_manifest_bytes: int = 2**20
    max_total_bytes: int = 16 * 2**30

    def __post_init__(self) -> None:
        for name in ("max_members", "max_member_bytes", "max_manifest_bytes", "max_total_bytes"):
            require_int(name, getattr(self, name), low=0)

    @cached_property
    def archive_limits(self) -> ArchiveLimits:
        """The same ceilings for `mmsearch_gym.archives`: stored members only, the manifest's own limit."""
        return ArchiveLimits(
            max_members=self.max_members, max_member_bytes=self.max_member_bytes,
            max_total_bytes=self.max_total_bytes, max_central_directory_bytes=self.max_members * 1024,
            compression_methods=frozenset({zipfile.ZIP_STORED}),
            member_bytes=((MANIFEST_NAME, self.max_manifest_bytes),))


DEFAULT_LIMITS = BundleLimits()


@dataclass(frozen=True)
class BundleInfo:
    """What a verified bundle holds; `sha256` is the content hash a leaderboard pins."""

    path: str
    format_version: int
    sha256: str
    entry_count: int
    image_count: int
    backend_ids: tuple[str, ...]
    size_bytes: int


def entries_sha256(entries: Iterable[tuple[str, str]]) -> str:
    """The bundle hash: sha256 over ``key \\n sha256(payload) \\n`` for every entry, sorted by key.

    Thumbnails are covered through the hashes each payload references."""
    hasher = hashlib.sha256()
    for key, payload_sha in sorted(entries):
        hasher.update(key.encode("utf-8") + b"\n" + payload_sha.encode("ascii") + b"\n")
    return hasher.hexdigest()


def entry_member(key: str) -> str:
    return f"entries/{sha256_hex(key.encode('utf-8'))}.json"


def image_member(sha: str) -> str:
    return f"images/{sha}"


def own_cache(cache: SearchCache | str | os.PathLike[str], *, create: bool) -> tuple[SearchCache, bool]:
    """A `SearchCache` for `cache` and whether the caller opened it (and so must close it)."""
    if isinstance(cache, SearchCache):
        return cache, False
    return SearchCache(cache, create=create), True


_ERRORS: dict[str, type[BundleError]] = {"unsafe": UnsafeBundleMember, "too_large": BundleTooLarge}


def _bundle_error(path: Path, error: ArchiveError) -> BundleError:
    """The first problem `archives` found, as the matching `BundleError`."""
    problem = error.problems[0]
    if problem.kind == "not_a_zip":
        return BundleFormatError(f"{str(path)!r} is not a search cache bundle ({problem.reason})")
    return _ERRORS.get(problem.kind, BundleFormatError)(f"bundle {problem.reason}", member=problem.member)


def open_bundle_zip(path: Path, limits: BundleLimits) -> zipfile.ZipFile:
    """The bundle as a zip that passed every structural check of `mmsearch_gym.archives`."""
    if not path.is_file():
        raise BundleFormatError(f"bundle {str(path)!r} does not exist or is not a file")
    try:
        return open_archive(path, limits.archive_limits)
    except ArchiveError as error:
        raise _bundle_error(path, error) from None


def read_bundle_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: BundleLimits) -> bytes:
    """A member's bytes through the bounded, CRC-checked reader."""
    try:
        return read_member(archive, info, limits.archive_limits)
    except ArchiveError as error:
        raise _bundle_error(path, error) from None


def parse_manifest(data: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise BundleFormatError(f"{MANIFEST_NAME} is not UTF-8 JSON ({error})", member=MANIFEST_NAME) from None
    if not isinstance(manifest, dict):
        raise BundleFormatError(f"{MANIFEST_NAME} is not a JSON object", member=MANIFEST_NAME)
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleFormatError(f"{MANIFEST_NAME} declares format {manifest.get('format')!r}, "
                                f"expected {BUNDLE_FORMAT!r}", member=MANIFEST_NAME)
    version = manifest.get("format_version")
    if version != BUNDLE_FORMAT_VERSION or type(version) is not int:
        raise BundleFormatError(f"unknown bundle format version {version!r} (this mmsearch-gym reads "
                                f"version {BUNDLE_FORMAT_VERSION})", member=MANIFEST_NAME)
    if set(manifest) != _MANIFEST_FIELDS:
        raise BundleFormatError(f"{MANIFEST_NAME} fields are {sorted(manifest)}, expected "
                                f"{sorted(_MANIFEST_FIELDS)}", member=MANIFEST_NAME)
    if canonical_json(manifest) != data:
        raise BundleFormatError(f"{MANIFEST_NAME} is not in canonical form", member=MANIFEST_NAME)
    return manifest



__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "CONFLICT_POLICIES", "DEFAULT_LIMITS", "MANIFEST_NAME", "BundleConflict",
    "BundleError", "BundleFormatError", "BundleHashMismatch", "BundleInfo", "BundleLimits", "BundleTooLarge",
    "UnsafeBundleMember", "entries_sha256", "entry_member", "image_member", "open_bundle_zip", "own_cache",
    "parse_manifest", "read_bundle_member",
]
