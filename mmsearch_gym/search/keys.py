"""Content identities for search inputs: the same picture or the same query always gets the same digest.

Why here and not in `cache/`: the static and local backends need image identities too, and
dependencies point from `cache` to `search`, never back (DESIGN §1).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import numpy as np

_WHITESPACE = re.compile(r"\s+")


def image_digest(pixels: np.ndarray) -> str:
    """sha256 over the decoded RGB pixels and their shape, so PNG, JPEG-decoded or raw arrays of the
    same pixels share a digest and a resized copy does not."""
    array = np.ascontiguousarray(pixels, dtype=np.uint8)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"image_digest needs an RGB array of shape (H, W, 3), got shape {array.shape}")
    hasher = hashlib.sha256()
    hasher.update(f"rgb:{array.shape[0]}x{array.shape[1]}:".encode())
    hasher.update(array.tobytes())
    return hasher.hexdigest()


def normalize_query(query: str) -> str:
    """NFKC-normalised, whitespace-collapsed, case-folded query: two queries that differ only in
    spacing, case or compatibility characters are the same search."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", query)).strip().casefold()


def query_digest(query: str) -> str:
    return hashlib.sha256(normalize_query(query).encode("utf-8")).hexdigest()
