"""Search cache bundles: one portable, verifiable file per cache (DESIGN §6).

Why a bundle: a benchmark result is only reproducible with the exact search results behind it, so a
cache must travel as one file whose hash a leaderboard can pin.

Format: an uncompressed zip holding ``manifest.json`` (format, version, backend ids, counts and a
sha256 over the sorted entries), ``entries/<sha256 of key>.json`` (the canonical JSON payload of one
entry) and ``images/<sha256>`` (thumbnail bytes, named by their hash). Determinism: fixed member
order, fixed timestamps and attributes and no compression, so the same cache always exports to the
same bytes. Safety: a bundle may come from anyone, so reading it never unpickles, never extracts by
member name, and refuses unsafe names, unknown versions, oversized or too many members (declared and
actual sizes), compressed or encrypted members, and any hash mismatch. `import_bundle` validates the
whole file before writing anything and then writes in one transaction, so a refused or failed import
leaves the target cache as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from mmsearch_gym.archives import ArchiveError, ArchiveLimits, open_archive, read_member
from mmsearch_gym.cache.serialize import canonical_json, parse_payload, sha256_hex
from mmsearch_gym.cache.store import SearchCache

BUNDLE_FORMAT = "mmsearch-gym-search-bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
CONFLICT_POLICIES = ("error", "keep", "replace")

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ENTRY_NAME = re.compile(r"entries/([0-9a-f]{64})\.json")
_IMAGE_NAME = re.compile(r"images/([0-9a-f]{64})")
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


def _entry_member(key: str) -> str:
    return f"entries/{sha256_hex(key.encode('utf-8'))}.json"


def _image_member(sha: str) -> str:
    return f"images/{sha}"


# -- export ---------------------------------------------------------------------------------------------

def _zip_info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.file_size = size
    return info


def _open_cache(cache: SearchCache | str | os.PathLike[str], *, create: bool) -> tuple[SearchCache, bool]:
    if isinstance(cache, SearchCache):
        return cache, False
    return SearchCache(cache, create=create), True


def export_bundle(cache: SearchCache | str | os.PathLike[str], path: str | os.PathLike[str]) -> BundleInfo:
    """Write every entry of `cache` to the bundle file `path` (replaced atomically); returns its info.

    The cache is locked for writing while it is exported, so the bundle is a consistent snapshot."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"bundle output {str(target)!r} is a directory; give a file name")
    with ExitStack() as stack:
        source, owned = _open_cache(cache, create=False)
        if owned:
            stack.callback(source.close)
        stack.enter_context(source.transaction())
        hashes: dict[str, str] = {}
        images: set[str] = set()
        backend_ids: set[str] = set()
        for key in source.keys():
            payload = source.read_payload(key)
            if payload is None:
                continue
            hashes[key] = sha256_hex(payload)
            record = parse_payload(payload)
            images.update(record.thumbnails)
            backend_ids.add(record.backend_id)
        manifest = canonical_json({
            "format": BUNDLE_FORMAT, "format_version": BUNDLE_FORMAT_VERSION,
            "backend_ids": sorted(backend_ids), "entry_count": len(hashes), "image_count": len(images),
            "sha256": entries_sha256(hashes.items()),
        })
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
                archive.writestr(_zip_info(MANIFEST_NAME, len(manifest)), manifest)
                for member, key in sorted((_entry_member(key), key) for key in hashes):
                    payload = source.read_payload(key) or b""
                    archive.writestr(_zip_info(member, len(payload)), payload)
                for sha in sorted(images):
                    data = source.read_image(sha)
                    archive.writestr(_zip_info(_image_member(sha), len(data)), data)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
    return verify_bundle(target)


# -- reading and validating -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Scan:
    info: BundleInfo
    entries: dict[str, tuple[str, str]]  # key -> (member, payload sha256)
    images: dict[str, str]  # thumbnail sha256 -> member


def _archive_limits(limits: BundleLimits) -> ArchiveLimits:
    return ArchiveLimits(
        max_members=limits.max_members, max_member_bytes=limits.max_member_bytes,
        max_total_bytes=limits.max_total_bytes, max_central_directory_bytes=limits.max_members * 1024,
        compression_methods=frozenset({zipfile.ZIP_STORED}), member_bytes=((MANIFEST_NAME, limits.max_manifest_bytes),))


_ERRORS: dict[str, type[BundleError]] = {"unsafe": UnsafeBundleMember, "too_large": BundleTooLarge}


def _bundle_error(path: Path, error: ArchiveError) -> BundleError:
    """The first problem `archives` found, as the matching `BundleError`."""
    problem = error.problems[0]
    if problem.kind == "not_a_zip":
        return BundleFormatError(f"{str(path)!r} is not a search cache bundle ({problem.reason})")
    return _ERRORS.get(problem.kind, BundleFormatError)(f"bundle {problem.reason}", member=problem.member)


def _open_zip(path: Path, limits: BundleLimits) -> zipfile.ZipFile:
    """The bundle as a zip that passed every structural check of `mmsearch_gym.archives`."""
    if not path.is_file():
        raise BundleFormatError(f"bundle {str(path)!r} does not exist or is not a file")
    try:
        return open_archive(path, _archive_limits(limits))
    except ArchiveError as error:
        raise _bundle_error(path, error) from None


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: BundleLimits) -> bytes:
    try:
        return read_member(archive, info, _archive_limits(limits))
    except ArchiveError as error:
        raise _bundle_error(path, error) from None


def _parse_manifest(data: bytes) -> dict[str, Any]:
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


def _scan(path: Path, limits: BundleLimits) -> _Scan:
    with _open_zip(path, limits) as archive:
        infos = archive.infolist()
        for info in infos:
            name = info.filename
            if name != MANIFEST_NAME and not _ENTRY_NAME.fullmatch(name) and not _IMAGE_NAME.fullmatch(name):
                raise BundleFormatError(f"unexpected bundle member {name!r}", member=name)
        by_name = {info.filename: info for info in infos}
        if MANIFEST_NAME not in by_name:
            raise BundleFormatError(f"{str(path)!r} has no {MANIFEST_NAME}; not a search cache bundle")
        manifest = _parse_manifest(_read_member(path, archive, by_name[MANIFEST_NAME], limits))

        entries: dict[str, tuple[str, str]] = {}
        referenced: set[str] = set()
        backend_ids: set[str] = set()
        images: dict[str, str] = {}
        for info in infos:
            name = info.filename
            if _ENTRY_NAME.fullmatch(name):
                payload = _read_member(path, archive, info, limits)
                try:
                    record = parse_payload(payload)
                except ValueError as error:
                    raise BundleFormatError(f"bundle member {name!r} is not a valid entry: {error}",
                                            member=name) from None
                if canonical_json(json.loads(payload)) != payload:
                    raise BundleFormatError(f"bundle member {name!r} is not in canonical form", member=name)
                if _entry_member(record.key) != name:
                    raise BundleHashMismatch(f"bundle member {name!r} holds key {record.key!r}, whose member "
                                             f"name would be {_entry_member(record.key)!r}", member=name)
                entries[record.key] = (name, sha256_hex(payload))
                referenced.update(record.thumbnails)
                backend_ids.add(record.backend_id)
            elif (match := _IMAGE_NAME.fullmatch(name)) is not None:
                data = _read_member(path, archive, info, limits)
                if sha256_hex(data) != match.group(1):
                    raise BundleHashMismatch(f"bundle member {name!r} does not hash to its name", member=name)
                images[match.group(1)] = name
        missing = sorted(referenced - set(images))
        if missing:
            raise BundleFormatError(f"bundle lacks thumbnail member {_image_member(missing[0])!r} "
                                    f"({len(missing)} missing)", member=_image_member(missing[0]))
        unused = sorted(set(images) - referenced)
        if unused:
            raise BundleFormatError(f"bundle member {_image_member(unused[0])!r} is not used by any entry",
                                    member=_image_member(unused[0]))
        actual = entries_sha256((key, sha) for key, (_, sha) in entries.items())
        if manifest["sha256"] != actual:
            raise BundleHashMismatch(f"bundle {str(path)!r} content hash is {actual}, but its manifest "
                                     f"declares {manifest['sha256']!r}", member=MANIFEST_NAME)
        for field_name, value in (("entry_count", len(entries)), ("image_count", len(images)),
                                  ("backend_ids", sorted(backend_ids))):
            if manifest[field_name] != value:
                raise BundleFormatError(f"{MANIFEST_NAME} declares {field_name}={manifest[field_name]!r} "
                                        f"but the bundle holds {value!r}", member=MANIFEST_NAME)
    summary = BundleInfo(path=str(path), format_version=BUNDLE_FORMAT_VERSION, sha256=actual,
                         entry_count=len(entries), image_count=len(images),
                         backend_ids=tuple(sorted(backend_ids)), size_bytes=path.stat().st_size)
    return _Scan(info=summary, entries=entries, images=images)


def verify_bundle(path: str | os.PathLike[str], limits: BundleLimits = DEFAULT_LIMITS) -> BundleInfo:
    """Re-read every member, recompute every hash and the bundle hash; BundleError if anything is off."""
    return _scan(Path(path), limits).info


def is_bundle_file(path: str | os.PathLike[str]) -> bool:
    candidate = Path(path)
    return candidate.is_file() and zipfile.is_zipfile(candidate)


# -- import ---------------------------------------------------------------------------------------------

def import_bundle(path: str | os.PathLike[str], cache: SearchCache | str | os.PathLike[str], *,
                  on_conflict: Literal["error", "keep", "replace"] = "error",
                  limits: BundleLimits = DEFAULT_LIMITS) -> BundleInfo:
    """Add a bundle's entries to a cache (created when missing).

    on_conflict: what to do when the cache holds different results under a key of the bundle:
        "error" (refuse the whole import), "keep" the cached ones, or "replace" them.
    Everything is validated before the first write, and writes happen in one transaction.
    """
    if on_conflict not in CONFLICT_POLICIES:
        raise ValueError(f"on_conflict must be one of {CONFLICT_POLICIES}, got {on_conflict!r}")
    if isinstance(cache, SearchCache) and cache.readonly:
        raise PermissionError(f"search cache {cache.directory!r} is read-only")
    bundle = Path(path)
    scan = _scan(bundle, limits)
    with ExitStack() as stack:
        target, owned = _open_cache(cache, create=True)
        if owned:
            stack.callback(target.close)
        archive = stack.enter_context(_open_zip(bundle, limits))  # the caller's limits, not the defaults
        stack.enter_context(target.transaction())
        conflicts = []
        for key, (_, payload_sha) in sorted(scan.entries.items()):
            existing = target.read_payload(key)
            if existing is not None and sha256_hex(existing) != payload_sha:
                conflicts.append(key)
        if conflicts and on_conflict == "error":
            raise BundleConflict(
                f"search cache {target.directory!r} already holds different results for {len(conflicts)} "
                f"key(s) of the bundle, e.g. {conflicts[0]!r}; import with on_conflict='keep' or 'replace'")
        skip = set(conflicts) if on_conflict == "keep" else set()

        def read_checked(name: str, sha: str) -> bytes:
            try:
                data = _read_member(bundle, archive, archive.getinfo(name), limits)
            except KeyError:
                data = b""
            if sha256_hex(data) != sha:  # the file changed since it was validated
                raise BundleHashMismatch(f"bundle member {name!r} changed while importing", member=name)
            return data

        for sha, name in sorted(scan.images.items()):
            target.write_image(sha, read_checked(name, sha))
        for key, (name, payload_sha) in sorted(scan.entries.items()):
            if key not in skip:
                target.write_payload(key, read_checked(name, payload_sha))
    return scan.info


# -- bundles as read-only caches ------------------------------------------------------------------------

def default_bundle_work_dir() -> Path:
    """Where bundles opened as caches are imported: $MMSEARCH_GYM_HOME/bundles, else the user cache dir."""
    home = os.environ.get("MMSEARCH_GYM_HOME")
    if home:
        return Path(home).expanduser() / "bundles"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mmsearch-gym" / "bundles"


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


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


def open_bundle_cache(path: str | os.PathLike[str], work_dir: str | os.PathLike[str] | None = None,
                      limits: BundleLimits = DEFAULT_LIMITS) -> SearchCache:
    """A read-only `SearchCache` with a bundle's entries.

    The bundle is imported once into ``<work_dir>/<sha256 of the bundle file>`` (validated in full,
    then moved into place atomically, so concurrent openers never see a half import) and reused."""
    bundle = Path(path)
    if not bundle.is_file():
        raise BundleFormatError(f"bundle {str(bundle)!r} does not exist or is not a file")
    root = Path(work_dir) if work_dir is not None else default_bundle_work_dir()
    final = root / _file_sha256(bundle)[:32]
    if not (final / "cache.db").is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{final.name[:12]}-", dir=root))
        try:
            with SearchCache(staging / "cache") as cache:
                import_bundle(bundle, cache, limits=limits)
            try:
                os.rename(staging / "cache", final)
            except OSError:
                if not (final / "cache.db").is_file():  # not a lost race with another importer
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return SearchCache(final, readonly=True)


def open_cache(path: str | os.PathLike[str], *, readonly: bool = False, create: bool = True,
               work_dir: str | os.PathLike[str] | None = None) -> SearchCache:
    """A cache directory or a bundle file (bundles open read-only)."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"cache_path must be a cache directory or a bundle file, got {type(path).__name__}")
    candidate = Path(path).expanduser()
    if candidate.is_file():
        if not zipfile.is_zipfile(candidate):
            raise ValueError(f"cache_path {str(candidate)!r} is a file but not a search cache bundle")
        return open_bundle_cache(candidate, work_dir=work_dir)
    return SearchCache(candidate, readonly=readonly, create=create)


__all__ = [
    "BUNDLE_FORMAT", "BUNDLE_FORMAT_VERSION", "BundleConflict", "BundleError", "BundleFormatError",
    "BundleHashMismatch", "BundleInfo", "BundleLimits", "BundleTooLarge", "CONFLICT_POLICIES",
    "UnsafeBundleMember", "default_bundle_work_dir", "entries_sha256", "export_bundle", "import_bundle",
    "is_bundle_file", "open_bundle_cache", "open_cache", "verify_bundle",
]
