"""Verifying and importing bundles: every member re-read and every hash recomputed before anything
is trusted or written.

Why validate the whole file first: a bundle may come from anyone. `verify_bundle` refuses unknown
versions, unexpected members, non-canonical JSON, entries filed under the wrong name, missing or
unused thumbnails and any hash mismatch (on top of the structural checks of `mmsearch_gym.archives`).
`import_bundle` validates everything before its first write and then writes in one transaction, so a
refused or failed import leaves the target cache as it was.
"""

from __future__ import annotations

import json
import os
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmsearch_gym.cache.bundle_format import (
    BUNDLE_FORMAT_VERSION, CONFLICT_POLICIES, DEFAULT_LIMITS, ENTRY_NAME, IMAGE_NAME, MANIFEST_NAME, BundleConflict,
    BundleFormatError, BundleHashMismatch, BundleInfo, BundleLimits, entries_sha256, entry_member, image_member,
    open_bundle_zip, own_cache, parse_manifest, read_bundle_member,
)
from mmsearch_gym.cache.serialize import canonical_json, parse_payload, sha256_hex
from mmsearch_gym.cache.store import SearchCache


@dataclass(frozen=True)
class _Scan:
    info: BundleInfo
    entries: dict[str, tuple[str, str]]  # key -> (member, payload sha256)
    images: dict[str, str]  # thumbnail sha256 -> member


def _scan(path: Path, limits: BundleLimits) -> _Scan:
    with open_bundle_zip(path, limits) as archive:
        infos = archive.infolist()
        for info in infos:
            name = info.filename
            if name != MANIFEST_NAME and not ENTRY_NAME.fullmatch(name) and not IMAGE_NAME.fullmatch(name):
                raise BundleFormatError(f"unexpected bundle member {name!r}", member=name)
        by_name = {info.filename: info for info in infos}
        if MANIFEST_NAME not in by_name:
            raise BundleFormatError(f"{str(path)!r} has no {MANIFEST_NAME}; not a search cache bundle")
        manifest = parse_manifest(read_bundle_member(path, archive, by_name[MANIFEST_NAME], limits))

        entries: dict[str, tuple[str, str]] = {}
        referenced: set[str] = set()
        backend_ids: set[str] = set()
        images: dict[str, str] = {}
        for info in infos:
            name = info.filename
            if ENTRY_NAME.fullmatch(name):
                payload = read_bundle_member(path, archive, info, limits)
                try:
                    record = parse_payload(payload)
                except ValueError as error:
                    raise BundleFormatError(f"bundle member {name!r} is not a valid entry: {error}",
                                            member=name) from None
                if canonical_json(json.loads(payload)) != payload:
                    raise BundleFormatError(f"bundle member {name!r} is not in canonical form", member=name)
                if entry_member(record.key) != name:
                    raise BundleHashMismatch(f"bundle member {name!r} holds key {record.key!r}, whose member "
                                             f"name would be {entry_member(record.key)!r}", member=name)
                entries[record.key] = (name, sha256_hex(payload))
                referenced.update(record.thumbnails)
                backend_ids.add(record.backend_id)
            elif (match := IMAGE_NAME.fullmatch(name)) is not None:
                data = read_bundle_member(path, archive, info, limits)
                if sha256_hex(data) != match.group(1):
                    raise BundleHashMismatch(f"bundle member {name!r} does not hash to its name", member=name)
                images[match.group(1)] = name
        missing = sorted(referenced - set(images))
        if missing:
            raise BundleFormatError(f"bundle lacks thumbnail member {image_member(missing[0])!r} "
                                    f"({len(missing)} missing)", member=image_member(missing[0]))
        unused = sorted(set(images) - referenced)
        if unused:
            raise BundleFormatError(f"bundle member {image_member(unused[0])!r} is not used by any entry",
                                    member=image_member(unused[0]))
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
        target, owned = own_cache(cache, create=True)
        if owned:
            stack.callback(target.close)
        archive = stack.enter_context(open_bundle_zip(bundle, limits))  # the caller's limits, not the defaults
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
                data = read_bundle_member(bundle, archive, archive.getinfo(name), limits)
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


__all__ = ["import_bundle", "is_bundle_file", "verify_bundle"]
