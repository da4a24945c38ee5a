"""Perceptual hashes of images and their Hamming-distance nearest neighbours (the local image search).

Every corpus image is indexed by 64-bit perceptual hashes (imagehash.phash) of the whole image and
of seven crops of it (three centred, four corner-anchored); a query is hashed once, whole, and
matched by Hamming distance (numpy popcount over uint64 XOR) under a threshold, so an unrelated
image returns nothing. Why the crop hashes: a single phash catches re-encodes and resizes but only
~half of 10% crops (docs/measured-floors.md); with the crops stored at index time, centre crops down
to 80% (and, with crops="all", corner crops of 90%) match at distance <= 8 while unrelated images stay
>= 12 (measured on 350 synthetic and 1/f-noise images), and the query still costs one phash.
imagehash is an optional dependency (`mmsearch-gym[local]`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

try:
    import imagehash
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError("local image search needs imagehash: pip install 'mmsearch-gym[local]'") from _error

__all__ = [
    "CROPS", "CROP_MODES", "DEFAULT_THRESHOLD", "HASH_ROWS", "HASH_VERSION", "HashIndex", "HashMatch",
    "index_hashes", "popcount64", "query_hash",
]

# Bump when hashing, crops or thumbnails change their output (part of the index key and backend id).
HASH_VERSION = 1
DEFAULT_THRESHOLD = 10

# (kept fraction of each side, horizontal anchor, vertical anchor) of the crops hashed at index time.
CROPS: tuple[tuple[float, float, float], ...] = (
    (0.93, 0.5, 0.5), (0.86, 0.5, 0.5), (0.80, 0.5, 0.5),
    (0.90, 0.0, 0.0), (0.90, 1.0, 0.0), (0.90, 0.0, 1.0), (0.90, 1.0, 1.0),
)
HASH_ROWS = 1 + len(CROPS)
# How many of the stored variants (in CROPS order, after the whole image) a query is compared with.
# Nearest-neighbour time grows with the rows: ~0.1 ms per row per 100k images.
CROP_MODES = {"none": 1, "centre": 4, "all": HASH_ROWS}
_CROP_BASE = 128  # crops are cut from a grey 128x128 copy: phash squashes to 32x32 anyway


def _hash_to_int(image_hash: imagehash.ImageHash) -> int:
    return int(np.packbits(np.asarray(image_hash.hash, dtype=bool).ravel()).view(">u8")[0])


def query_hash(image: Image.Image) -> int:
    """The 64-bit phash of a whole image, as queries are hashed."""
    return _hash_to_int(imagehash.phash(image))


def index_hashes(image: Image.Image) -> list[int]:
    """The HASH_ROWS hashes stored for one corpus image: the whole image, then each of CROPS."""
    hashes = [query_hash(image)]
    grey = image.convert("L").resize((_CROP_BASE, _CROP_BASE), Image.Resampling.LANCZOS)
    for keep, anchor_x, anchor_y in CROPS:
        side = max(1, round(_CROP_BASE * keep))
        left = round((_CROP_BASE - side) * anchor_x)
        top = round((_CROP_BASE - side) * anchor_y)
        hashes.append(_hash_to_int(imagehash.phash(grey.crop((left, top, left + side, top + side)))))
    return hashes


if hasattr(np, "bitwise_count"):
    def popcount64(values: np.ndarray) -> np.ndarray:
        """Set bits of each uint64 (numpy >= 2 has a native popcount)."""
        counts: np.ndarray = np.bitwise_count(values)
        return counts
else:  # pragma: no cover - numpy < 2
    _BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def popcount64(values: np.ndarray) -> np.ndarray:
        """Set bits of each uint64 (byte lookup table: numpy < 2 has no popcount)."""
        counts = _BYTE_POPCOUNT[np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8)]
        total: np.ndarray = counts.reshape(*values.shape, 8).sum(axis=-1, dtype=np.uint8)
        return total


@dataclass(frozen=True)
class HashMatch:
    page: int
    image: int
    distance: int


class HashIndex:
    """Hamming-distance nearest neighbours over the index hashes of every corpus image.

    hashes: (HASH_ROWS, n_images) uint64, variant-major (row 0 the whole images, then one row per
    crop), so that searching the first `rows` variants scans one contiguous block; image_page: page
    of each image; url_rank: rank of each page's url in sorted order (ties in distance go to the
    smaller url, so results never depend on the order of pages.jsonl lines that tie).
    """

    def __init__(self, hashes: np.ndarray, image_page: np.ndarray, url_rank: np.ndarray) -> None:
        if hashes.ndim != 2 or hashes.dtype != np.uint64 or hashes.shape[1] != len(image_page):
            raise ValueError(f"hashes must be (rows, n_images) uint64 matching image_page, got "
                             f"{hashes.dtype} {hashes.shape} and {image_page.shape}")
        self.hashes = np.ascontiguousarray(hashes)
        self.n_images = hashes.shape[1]
        self.image_page = image_page
        self.url_rank = url_rank

    def search(self, query: int, threshold: int, top_k: int, rows: int | None = None) -> list[HashMatch]:
        """Pages with an image within `threshold` bits of `query` in any of the first `rows` hash
        variants (default: all), one per page (its closest image, the lower image index on ties),
        ordered by distance then url, at most `top_k`."""
        flat = self.hashes[:rows].reshape(-1)  # a view: leading rows of a C-ordered array
        if top_k <= 0 or flat.size == 0:
            return []
        distances = popcount64(flat ^ np.uint64(query))
        hits = np.flatnonzero(distances <= threshold)
        if hits.size == 0:
            return []
        images = hits % self.n_images
        dist = distances[hits].astype(np.int64)
        pages = self.image_page[images].astype(np.int64)
        order = np.lexsort((images, dist, pages))  # by page, then distance, then image
        pages, dist, images = pages[order], dist[order], images[order]
        first = np.flatnonzero(np.r_[True, pages[1:] != pages[:-1]])
        pages, dist, images = pages[first], dist[first], images[first]
        ranking = np.lexsort((self.url_rank[pages], dist))[:top_k]
        return [HashMatch(int(pages[i]), int(images[i]), int(dist[i])) for i in ranking]
