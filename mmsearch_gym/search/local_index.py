"""The local corpus index and its persistence: built once, stored, loaded with memory maps.

The index lives under `<corpus>/.index/<build key>/` (one directory per set of build parameters),
with a manifest holding the fingerprint of pages.jsonl (size, mtime, sha256): a changed file is
rebuilt, an unchanged one is loaded with memory maps, a touched but identical one only gets its mtime
updated. Why memory maps and byte offsets: a 100k-page corpus must not be held in memory per process;
texts are read back from pages.jsonl by byte offset (`page_spans`). Directories are written through
`save_atomically` (`mmsearch_gym.runs.write_directory_atomic`: staging directory + rename), so a reader never sees a half-written index; an
unreadable or inconsistent index is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch_gym.imaging import ImageError, decode_image
from mmsearch_gym.runs import write_bytes_atomic, write_directory_atomic
from mmsearch_gym.search.bm25 import build_bm25, load_bm25
from mmsearch_gym.search.corpus import CorpusPage, FileFingerprint, file_sha256, stat_fingerprint
from mmsearch_gym.search.phash import HASH_ROWS, HashIndex, index_hashes
from mmsearch_gym.search.summarize import tokenize
from mmsearch_gym.search.types import EncodedImage

__all__ = [
    "INDEX_DIR_NAME", "INDEX_FORMAT", "LocalIndex", "THUMBNAIL_MAX_SIDE", "THUMBNAIL_QUALITY", "build_index",
    "load_index", "rewrite_manifest", "save_atomically", "save_index",
]

INDEX_FORMAT = 1
INDEX_DIR_NAME = ".index"
THUMBNAIL_MAX_SIDE = 128
THUMBNAIL_QUALITY = 85
save_atomically = write_directory_atomic  # the name this module exported before the helper moved to the ground
_DRAFT_SIZE = (512, 512)  # JPEG decoders may downscale big images this far: hashes need 32x32


@dataclass
class LocalIndex:
    """Everything a query needs; arrays may be memory maps of the persisted files."""

    manifest: dict[str, Any]
    page_spans: np.ndarray  # (n_pages, 2) int64 byte offsets [start, end) in pages.jsonl
    url_rank: np.ndarray  # (n_pages,) int64
    hash_index: HashIndex
    thumb_offsets: np.ndarray  # (n_images + 1,) int64 into thumbs
    thumbs: np.ndarray  # uint8, concatenated JPEG thumbnails
    bm25: Any  # bm25s.BM25, or None when the corpus has no tokens at all


_ARRAYS = ("page_spans", "url_rank", "hashes", "image_page", "thumb_offsets", "thumbs")


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.LANCZOS)
    return EncodedImage.from_pil(thumb, "JPEG", quality=THUMBNAIL_QUALITY).data


def _open_image(path: Path, page: CorpusPage, pages_file: Path) -> tuple[Image.Image, bytes]:
    try:
        data = path.read_bytes()
        image = decode_image(data, mode="RGB", draft=_DRAFT_SIZE)
    except (OSError, ImageError) as error:
        raise ValueError(f"{str(pages_file)!r} line {page.line}: cannot read image {str(path)!r} "
                         f"of page {page.url!r}: {error}") from None
    return image, data


def _url_rank(urls: list[str]) -> np.ndarray:
    order = sorted(range(len(urls)), key=urls.__getitem__)
    rank = np.empty(len(urls), dtype=np.int64)
    rank[order] = np.arange(len(urls), dtype=np.int64)
    return rank


def build_index(pages: list[CorpusPage], fingerprint: FileFingerprint, pages_file: Path,
           build: dict[str, Any], stopwords: frozenset[str]) -> LocalIndex:
    root = pages_file.parent
    hashes: list[list[int]] = []
    image_page: list[int] = []
    thumbs = bytearray()  # one buffer, not a list joined at the end: half the peak memory
    thumb_offsets = [0]
    seen: dict[str, tuple[str, list[int], bytes]] = {}  # an image file shared by pages is read once
    digest = hashlib.sha256(f"pages:{fingerprint.sha256}".encode())
    for number, page in enumerate(pages):
        for relative in page.images:
            if relative not in seen:
                image, data = _open_image(root / relative, page, pages_file)
                seen[relative] = (hashlib.sha256(data).hexdigest(), index_hashes(image), _thumbnail(image))
            sha, image_hashes, thumbnail = seen[relative]
            digest.update(f"\n{relative}:{sha}".encode())
            hashes.append(image_hashes)
            image_page.append(number)
            thumbs += thumbnail
            thumb_offsets.append(len(thumbs))
    del seen
    url_rank = _url_rank([page.url for page in pages])
    manifest = {
        "format": INDEX_FORMAT,
        "build": build,
        "pages_file": fingerprint.to_json(),
        "corpus_digest": digest.hexdigest(),
        "num_pages": len(pages),
        "num_images": len(image_page),
    }
    bm25 = build_bm25((tokenize(f"{page.title}\n{page.text}", stopwords) for page in pages), build["k1"], build["b"])
    manifest["has_text_index"] = bm25 is not None
    return LocalIndex(
        manifest=manifest,
        page_spans=np.array([(page.offset, page.end) for page in pages], dtype=np.int64).reshape(-1, 2),
        url_rank=url_rank,
        hash_index=HashIndex(np.array(hashes, dtype=np.uint64).reshape(-1, HASH_ROWS).T,
                             np.array(image_page, dtype=np.int64), url_rank),
        thumb_offsets=np.array(thumb_offsets, dtype=np.int64),
        thumbs=np.frombuffer(thumbs, dtype=np.uint8),
        bm25=bm25,
    )


def save_index(index: LocalIndex, target: Path) -> None:
    """Write the index into a fresh directory next to `target`, then rename it into place, so a
    reader never sees a half-written index (the manifest is written last)."""
    def write(staging: Path) -> None:
        arrays = {
            "page_spans": index.page_spans, "url_rank": index.url_rank,
            "hashes": index.hash_index.hashes, "image_page": index.hash_index.image_page,
            "thumb_offsets": index.thumb_offsets, "thumbs": index.thumbs,
        }
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        if index.bm25 is not None:
            index.bm25.save(str(staging / "bm25"), show_progress=False)
        (staging / "manifest.json").write_text(json.dumps(index.manifest, indent=1, sort_keys=True))

    save_atomically(target, write)


def load_index(target: Path, pages_file: Path, build: dict[str, Any]) -> LocalIndex | None:
    """The persisted index if it exists, matches the build parameters and pages.jsonl is unchanged;
    None when it must be (re)built. Unreadable or inconsistent files also mean a rebuild."""
    manifest_path = target / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != INDEX_FORMAT or manifest.get("build") != build:
            return None
        recorded = manifest["pages_file"]
        size, mtime_ns = stat_fingerprint(pages_file)
        if (size, mtime_ns) != (recorded["size"], recorded["mtime_ns"]):
            if size != recorded["size"] or file_sha256(pages_file) != recorded["sha256"]:
                return None
            recorded["mtime_ns"] = mtime_ns  # same bytes, touched: remember the new mtime
            rewrite_manifest(manifest_path, manifest)
        # np.asarray: plain ndarray views of the maps (np.memmap's Python-level slicing is slow)
        arrays = {name: np.asarray(np.load(target / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                  for name in _ARRAYS}
        bm25 = load_bm25(target / "bm25") if manifest["has_text_index"] else None
        n_pages, n_images = manifest["num_pages"], manifest["num_images"]
        consistent = (
            arrays["page_spans"].shape == (n_pages, 2) and arrays["url_rank"].shape == (n_pages,)
            and arrays["hashes"].shape == (HASH_ROWS, n_images) and arrays["image_page"].shape == (n_images,)
            and arrays["thumb_offsets"].shape == (n_images + 1,)
            and int(arrays["thumb_offsets"][-1]) == arrays["thumbs"].shape[0]
            and (bm25 is None or bm25.scores["num_docs"] == n_pages)
        )
        if not consistent:
            raise ValueError("array shapes disagree with the manifest")
    except (OSError, ValueError, KeyError, TypeError) as error:
        warnings.warn(f"rebuilding the local search index at {str(target)!r}: it could not be loaded ({error})",
                      RuntimeWarning, stacklevel=3)
        return None
    return LocalIndex(
        manifest=manifest,
        page_spans=arrays["page_spans"],
        url_rank=arrays["url_rank"],
        hash_index=HashIndex(arrays["hashes"], arrays["image_page"], arrays["url_rank"]),
        thumb_offsets=arrays["thumb_offsets"],
        thumbs=arrays["thumbs"],
        bm25=bm25,
    )


def rewrite_manifest(path: Path, manifest: dict[str, Any]) -> None:
    try:
        write_bytes_atomic(path, json.dumps(manifest, indent=1, sort_keys=True).encode(), mode=0o644)
    except OSError:
        pass  # read-only index: the next load re-hashes pages.jsonl, which is only slower
