"""Cache key strings: what identifies one cached search.

Why content hashes: the same picture (PNG bytes, a PIL image, a raw array) or the same query up to
spacing, case and compatibility characters must find the same entry, and a key must be stable
across machines and Python versions (DESIGN §6). Keys are namespaced by the backend id (a different
backend or backend setting is a different search) and by `top_k`.

Key layout: ``v1|<backend_id>|<top_k>|<kind>|<digest>`` for entries and ``img|<sha256>`` for the
thumbnail bytes they reference. The backend id may itself contain ``|``; keys are parsed from the
right.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from mmsearch_gym.checks import require_int
from mmsearch_gym.imaging import load_rgb
from mmsearch_gym.search.keys import image_digest, normalize_query, query_digest
from mmsearch_gym.search.types import QueryImage

KEY_VERSION = "v1"
ENTRY_PREFIX = KEY_VERSION + "|"
IMAGE_PREFIX = "img|"
META_PREFIX = "meta|"
KINDS = ("image", "text")

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class KeyParts:
    """The fields an entry key is made of."""

    backend_id: str
    top_k: int
    kind: str
    digest: str


def is_sha256_hex(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and _HEX64.fullmatch(value) is not None


def check_backend_id(backend_id: object) -> str:
    if not isinstance(backend_id, str) or not backend_id.strip():
        raise ValueError(f"backend_id must be a non-empty string, got {backend_id!r}")
    if _CONTROL.search(backend_id):
        raise ValueError(f"backend_id must not contain control characters, got {backend_id!r}")
    return backend_id


def check_top_k(top_k: object) -> int:
    return require_int("top_k", top_k, low=1)


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise ValueError(f"search kind must be 'image' or 'text', got {kind!r}")
    return str(kind)


def entry_key(backend_id: str, kind: str, digest: str, top_k: int) -> str:
    """The key of one cached search (arguments already validated or checked here)."""
    return f"{ENTRY_PREFIX}{check_backend_id(backend_id)}|{check_top_k(top_k)}|{check_kind(kind)}|{digest}"


def image_blob_key(sha256_hex: str) -> str:
    """Thumbnails are stored once under their own content hash, so identical thumbnails dedupe."""
    return IMAGE_PREFIX + sha256_hex


@functools.lru_cache(maxsize=8192)
def cached_query_digest(query: str) -> str:
    """`query_digest` memoised: normalising and hashing is a measurable part of a cache hit."""
    return query_digest(query)


def resolve_image_digest(image: Any) -> str:
    """The pixel digest of an image query.

    Accepts a `QueryImage`, an RGB array, a PIL image, encoded image bytes, a file path given as a
    `pathlib.Path`, or an already computed digest (64 lowercase hex characters). A plain string that is
    not a digest is refused rather than guessed to be a path.
    """
    if isinstance(image, QueryImage):
        return image.digest
    if isinstance(image, str):
        if is_sha256_hex(image):
            return image
        raise ValueError(
            "an image query given as a string must be a 64-hex-digit image digest "
            f"(pass a pathlib.Path for an image file), got {image!r}")
    if isinstance(image, bytearray):
        image = bytes(image)
    if isinstance(image, (np.ndarray, Image.Image, bytes, os.PathLike)):
        return image_digest(load_rgb(image))
    raise ValueError(f"unsupported image query of type {type(image).__name__}")


def query_identity(kind: str, query_or_image: Any) -> tuple[str, str | None]:
    """(digest, original query text or None) for a search input of the given kind."""
    if check_kind(kind) == "text":
        if not isinstance(query_or_image, str):
            raise ValueError(f"a text query must be a string, got {type(query_or_image).__name__}")
        return cached_query_digest(query_or_image), query_or_image
    return resolve_image_digest(query_or_image), None


def parse_entry_key(key: str) -> KeyParts:
    """Split an entry key into its fields; ValueError naming the key when it is not one."""
    if not isinstance(key, str) or not key.startswith(ENTRY_PREFIX):
        raise ValueError(f"not a search cache entry key: {key!r}")
    parts = key[len(ENTRY_PREFIX):].rsplit("|", 3)
    if len(parts) != 4:
        raise ValueError(f"not a search cache entry key: {key!r}")
    backend_id, top_k, kind, digest = parts
    if (not top_k.isdigit() or top_k != str(int(top_k)) or top_k == "0" or kind not in KINDS
            or not is_sha256_hex(digest) or not backend_id.strip() or _CONTROL.search(backend_id)):
        raise ValueError(f"not a search cache entry key: {key!r}")
    return KeyParts(backend_id=backend_id, top_k=int(top_k), kind=kind, digest=digest)


__all__ = [
    "ENTRY_PREFIX", "IMAGE_PREFIX", "KEY_VERSION", "KINDS", "META_PREFIX", "KeyParts",
    "cached_query_digest", "check_backend_id", "check_kind", "check_top_k", "entry_key",
    "image_blob_key", "is_sha256_hex", "normalize_query", "parse_entry_key", "query_identity",
    "resolve_image_digest",
]
