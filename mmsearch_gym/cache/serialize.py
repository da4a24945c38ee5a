"""How one cached search is written down: canonical JSON plus content-addressed image bytes.

Why not pickle: a cache directory or a bundle may come from someone else, and unpickling runs
code. Entries are canonical JSON (sorted keys, no whitespace, UTF-8), so the same result always has
the same bytes and bundles are byte-for-byte reproducible; thumbnails are referenced by the sha256
of their encoded bytes and stored once each.

Why a checksum: SQLite protects against torn writes but not against a file garbled on disk or in
transit, and a truncated JSON document can still parse. Every stored entry therefore carries a
sha256 over its key and payload, so a damaged entry (or one copied under the wrong key) raises
`CorruptCacheEntry` instead of being returned as a silently wrong result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from mmsearch_gym.cache.keys import ENTRY_PREFIX, is_sha256_hex, normalize_query, parse_entry_key
from mmsearch_gym.search.errors import CorruptCacheEntry
from mmsearch_gym.search.keys import query_digest
from mmsearch_gym.search.types import EncodedImage, SearchItem, SearchResults

PAYLOAD_FORMAT = 1
STORED_MAGIC = b"MSGC1\n"
_HEADER_LEN = len(STORED_MAGIC) + 64 + 1
_PAYLOAD_FIELDS = frozenset({
    "format", "key", "backend_id", "top_k", "kind", "digest", "query", "normalized_query", "image_url", "items",
})
_ITEM_FIELDS = frozenset({"title", "url", "snippet", "thumbnail"})


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (the same value always encodes to the same bytes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class EntryRecord:
    """A decoded, validated cache entry (thumbnails still referenced by hash).

    digest: the query digest (text) or the image pixel digest (image), as in the key.
    items: (title, url, snippet, thumbnail sha256 or None) per result item.
    """

    key: str
    backend_id: str
    top_k: int
    kind: str
    digest: str
    query: str | None
    normalized_query: str | None
    image_url: str | None
    items: tuple[tuple[str, str, str, str | None], ...]

    @property
    def image_digest(self) -> str | None:
        return self.digest if self.kind == "image" else None

    @property
    def thumbnails(self) -> tuple[str, ...]:
        """Distinct thumbnail hashes, in order of first use."""
        return tuple(dict.fromkeys(item[3] for item in self.items if item[3]))

    def to_results(self, images: Mapping[str, bytes]) -> SearchResults:
        items = tuple(SearchItem(title, url, snippet, EncodedImage(images[thumb]) if thumb else None)
                      for title, url, snippet, thumb in self.items)
        return SearchResults(self.kind, items, None, source="cache_hit")  # type: ignore[arg-type]


def encode_entry(key: str, query: str | None, image_url: str | None,
                 results: SearchResults) -> tuple[bytes, dict[str, bytes]]:
    """(canonical payload, {sha256: thumbnail bytes}) for a successful search result."""
    parts = parse_entry_key(key)
    if not isinstance(results, SearchResults):
        raise ValueError(f"only SearchResults can be cached, got {type(results).__name__}")
    if results.kind != parts.kind:
        raise ValueError(f"cannot cache {results.kind} results under {parts.kind} key {key!r}")
    if results.error is not None:
        raise ValueError(f"refusing to cache a failed search (error={results.error!r}) under key {key!r}")
    if (query is None) != (parts.kind == "image"):
        raise ValueError(f"a {parts.kind} entry {'must not' if query is None else 'needs'} have query text")
    images: dict[str, bytes] = {}
    items = []
    for index, item in enumerate(results.items):
        for name in ("title", "url", "snippet"):
            if not isinstance(getattr(item, name), str):
                raise ValueError(f"result item {index} field {name!r} must be a string, "
                                 f"got {type(getattr(item, name)).__name__}")
        thumb = None
        if item.thumbnail is not None:
            if not isinstance(item.thumbnail, EncodedImage):
                raise ValueError(f"result item {index} thumbnail must be an EncodedImage, "
                                 f"got {type(item.thumbnail).__name__}")
            data = bytes(item.thumbnail.data)
            thumb = sha256_hex(data)
            images[thumb] = data
        items.append({"title": item.title, "url": item.url, "snippet": item.snippet, "thumbnail": thumb})
    if image_url is not None and not isinstance(image_url, str):
        raise ValueError(f"image_url must be a string or None, got {type(image_url).__name__}")
    payload = {
        "format": PAYLOAD_FORMAT, "key": key, "backend_id": parts.backend_id, "top_k": parts.top_k,
        "kind": parts.kind, "digest": parts.digest, "query": query,
        "normalized_query": normalize_query(query) if query is not None else None,
        "image_url": image_url, "items": items,
    }
    try:
        return canonical_json(payload), images
    except UnicodeEncodeError as error:
        raise ValueError(f"search results for key {key!r} contain text that is not valid Unicode: {error}") \
            from None


def parse_payload(payload: bytes, *, strict: bool = True) -> EntryRecord:
    """Decode and validate an entry payload; ValueError saying what is wrong (never unpickles).

    strict: also check the key's syntax and recompute the query digest from the query text. Entries
    read back from a cache skip these two (their checksum was just verified, and they were validated
    when written); bundles, which come from anywhere, are always checked strictly.
    """
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as error:
        raise ValueError(f"payload is not UTF-8 JSON ({error})") from None
    if type(data) is not dict:
        raise ValueError("payload is not a JSON object")
    if data.keys() != _PAYLOAD_FIELDS:
        raise ValueError(f"payload fields are {sorted(data)}, expected {sorted(_PAYLOAD_FIELDS)}")
    if type(data["format"]) is not int or data["format"] != PAYLOAD_FORMAT:
        raise ValueError(f"unknown entry format {data['format']!r} (this version reads {PAYLOAD_FORMAT})")
    key, backend_id, top_k, kind, digest = data["key"], data["backend_id"], data["top_k"], data["kind"], data["digest"]
    query, normalized, image_url = data["query"], data["normalized_query"], data["image_url"]
    if (type(key) is not str or type(backend_id) is not str or type(top_k) is not int or type(digest) is not str
            or key != f"{ENTRY_PREFIX}{backend_id}|{top_k}|{kind}|{digest}"):
        raise ValueError(f"payload fields disagree with its key {key!r}")
    if strict:
        parse_entry_key(key)
    for name, value in (("query", query), ("normalized_query", normalized), ("image_url", image_url)):
        if value is not None and type(value) is not str:
            raise ValueError(f"field {name!r} must be a string or null")
    if kind == "text":
        if query is None or normalized is None or (strict and (normalized != normalize_query(query)
                                                               or query_digest(query) != digest)):
            raise ValueError(f"text query of key {key!r} does not match its digest")
    elif kind != "image" or query is not None or normalized is not None:
        raise ValueError(f"image entry {key!r} must have no query text")
    raw_items = data["items"]
    if type(raw_items) is not list:
        raise ValueError("field 'items' must be a list")
    items = []
    for index, item in enumerate(raw_items):
        if type(item) is not dict or item.keys() != _ITEM_FIELDS:
            raise ValueError(f"item {index} must have exactly the fields {sorted(_ITEM_FIELDS)}")
        title, url, snippet, thumb = item["title"], item["url"], item["snippet"], item["thumbnail"]
        if type(title) is not str or type(url) is not str or type(snippet) is not str:
            raise ValueError(f"item {index}: title, url and snippet must be strings")
        if thumb is not None and not is_sha256_hex(thumb):
            raise ValueError(f"item {index}: thumbnail must be a sha256 or null")
        items.append((title, url, snippet, thumb))
    return EntryRecord(key=key, backend_id=backend_id, top_k=top_k, kind=kind, digest=digest, query=query,
                       normalized_query=normalized, image_url=image_url, items=tuple(items))


def _entry_checksum(key: str, payload: bytes) -> bytes:
    hasher = hashlib.sha256(key.encode("utf-8"))
    hasher.update(b"\n")
    hasher.update(payload)
    return hasher.hexdigest().encode("ascii")


def wrap_entry(key: str, payload: bytes) -> bytes:
    """The bytes stored in the cache: magic, checksum over key and payload, payload."""
    return STORED_MAGIC + _entry_checksum(key, payload) + b"\n" + payload


def unwrap_entry(key: str, stored: object, cache_path: str | None = None) -> bytes:
    """The payload of stored entry bytes, or CorruptCacheEntry naming the key."""
    if not isinstance(stored, bytes):
        raise CorruptCacheEntry(key, f"stored value is {type(stored).__name__}, not bytes", cache_path)
    if len(stored) < _HEADER_LEN or not stored.startswith(STORED_MAGIC) or stored[_HEADER_LEN - 1] != 0x0A:
        raise CorruptCacheEntry(key, "missing or damaged header (truncated or not written by mmsearch-gym)",
                                cache_path)
    payload = stored[_HEADER_LEN:]
    if stored[len(STORED_MAGIC):_HEADER_LEN - 1] != _entry_checksum(key, payload):
        raise CorruptCacheEntry(key, "checksum mismatch (entry truncated, garbled or stored under "
                                     "another key)", cache_path)
    return payload


def decode_stored_entry(key: str, stored: object, cache_path: str | None = None) -> EntryRecord:
    """Checksum, parse and validate stored entry bytes; CorruptCacheEntry naming the key otherwise."""
    payload = unwrap_entry(key, stored, cache_path)
    try:
        record = parse_payload(payload, strict=False)
    except ValueError as error:
        raise CorruptCacheEntry(key, str(error), cache_path) from None
    if record.key != key:
        raise CorruptCacheEntry(key, f"entry belongs to key {record.key!r}", cache_path)
    return record


def check_image_blob(entry: str, sha: str, data: object, cache_path: str | None = None) -> bytes:
    """Image bytes whose hash matches their key, or CorruptCacheEntry naming the entry and image."""
    if not isinstance(data, bytes):
        raise CorruptCacheEntry(entry, f"thumbnail img|{sha} is missing", cache_path)
    if sha256_hex(data) != sha:
        raise CorruptCacheEntry(entry, f"thumbnail img|{sha} fails its checksum", cache_path)
    return data

