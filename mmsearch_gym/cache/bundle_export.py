"""Exporting a search cache to one bundle file: the same cache always gives the same bytes.

Why deterministic: a leaderboard pins a bundle by its sha256, so re-exporting an unchanged cache must
not change it (fixed member order, timestamps and attributes, no compression; see `bundle_format`).
"""

from __future__ import annotations

import os
import stat
import zipfile
from contextlib import ExitStack
from pathlib import Path

from mmsearch_gym.cache.bundle_format import (
    BUNDLE_FORMAT, BUNDLE_FORMAT_VERSION, MANIFEST_NAME, ZIP_DATE, BundleInfo, entries_sha256, entry_member,
    image_member, own_cache,
)
from mmsearch_gym.cache.bundle_verify import verify_bundle
from mmsearch_gym.cache.serialize import canonical_json, parse_payload, sha256_hex
from mmsearch_gym.cache.store import SearchCache
from mmsearch_gym.runs import atomic_file


def _zip_info(name: str, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.file_size = size
    return info



def export_bundle(cache: SearchCache | str | os.PathLike[str], path: str | os.PathLike[str]) -> BundleInfo:
    """Write every entry of `cache` to the bundle file `path` (replaced atomically); returns its info.

    The cache is locked for writing while it is exported, so the bundle is a consistent snapshot."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"bundle output {str(target)!r} is a directory; give a file name")
    with ExitStack() as stack:
        source, owned = own_cache(cache, create=False)
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
        with atomic_file(target) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_STORED) as archive:
            archive.writestr(_zip_info(MANIFEST_NAME, len(manifest)), manifest)
            for member, key in sorted((entry_member(key), key) for key in hashes):
                payload = source.read_payload(key) or b""
                archive.writestr(_zip_info(member, len(payload)), payload)
            for sha in sorted(images):
                data = source.read_image(sha)
                archive.writestr(_zip_info(image_member(sha), len(data)), data)
    return verify_bundle(target)


__all__ = ["export_bundle"]
