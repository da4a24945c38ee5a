"""Result types and the `SearchBackend` protocol every search tool implements (DESIGN §5).

Why these shapes: the environment, the cache and every backend (static, local, SerpApi) exchange the
same small, immutable, comparable values, so a replayed result can be checked for equality against
the recorded one, and results serialise to JSON plus encoded image bytes (never pickles).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from mmsearch_gym.imaging import decode_image

SearchKind = Literal["image", "text"]
ResultSource = Literal["live", "cache_hit", "cache_miss_empty", "static"]


@dataclass(frozen=True, eq=False)
class EncodedImage:
    """An image kept as its encoded bytes (PNG/JPEG/WebP) and decoded only when pixels are needed.

    Why not a PIL image or an array: decoding thumbnails dominates the cost of a cache hit
    (docs/measured-floors.md), and agents that forward images to a server can send these
    bytes as they are. Equality is equality of the encoded bytes, which is what a replay must reproduce.
    """

    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, (bytes, bytearray)) or not self.data:
            raise ValueError("EncodedImage needs non-empty encoded image bytes")

    @classmethod
    def from_pil(cls, image: Image.Image, format: str = "PNG", **save_kwargs: object) -> EncodedImage:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format=format, **save_kwargs)
        return cls(buffer.getvalue())

    @classmethod
    def from_array(cls, pixels: np.ndarray, format: str = "PNG", **save_kwargs: object) -> EncodedImage:
        return cls.from_pil(Image.fromarray(np.asarray(pixels, dtype=np.uint8)), format, **save_kwargs)

    @property
    def mime_type(self) -> str:
        head = self.data[:12]
        if head.startswith(b"\x89PNG"):
            return "image/png"
        if head.startswith(b"\xff\xd8"):
            return "image/jpeg"
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return "image/webp"
        if head[:3] == b"GIF":
            return "image/gif"
        return "application/octet-stream"

    def to_pil(self) -> Image.Image:
        """The decoded image, in its own mode; `imaging.ImageError` (one line) for bytes that are not a
        whole image or exceed `imaging.MAX_IMAGE_PIXELS` (a thumbnail from the web is untrusted)."""
        return decode_image(self.data)

    @cached_property
    def pixels(self) -> np.ndarray:
        """Decoded RGB uint8 pixels (decoded once, read-only so the cached copy cannot be altered)."""
        array = np.asarray(decode_image(self.data, mode="RGB"), dtype=np.uint8)
        array.setflags(write=False)
        return array

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EncodedImage) and bytes(self.data) == bytes(other.data)

    def __hash__(self) -> int:
        return hash(bytes(self.data))

    def __repr__(self) -> str:
        return f"EncodedImage({self.mime_type}, {len(self.data)} bytes)"


@dataclass(frozen=True)
class SearchItem:
    """One search hit: for image search a visual match (title, page url, thumbnail); for text search
    a web page (title, url, summary of the page relevant to the query)."""

    title: str
    url: str
    snippet: str = ""
    thumbnail: EncodedImage | None = None


@dataclass(frozen=True)
class SearchResults:
    """What one search call returned.

    `error` is set when the tool failed (the environment shows it to the model as a tool error);
    `source` tells where the result came from (live call, cache hit, empty result for a cache miss) and
    is excluded from equality so that a replayed result equals the recorded one.
    """

    kind: SearchKind
    items: tuple[SearchItem, ...] = ()
    error: str | None = None
    source: ResultSource = field(default="live", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("image", "text"):
            raise ValueError(f"SearchResults.kind must be 'image' or 'text', got {self.kind!r}")
        if not isinstance(self.items, tuple):
            object.__setattr__(self, "items", tuple(self.items))

    @classmethod
    def failed(cls, kind: SearchKind, error: str) -> SearchResults:
        return cls(kind=kind, items=(), error=error)

    def with_source(self, source: ResultSource) -> SearchResults:
        return SearchResults(kind=self.kind, items=self.items, error=self.error, source=source)


@dataclass(frozen=True, eq=False)
class QueryImage:
    """The image an image search is made with.

    `pixels` identify it (cache keys hash the decoded pixels); `url` is a public address of the same
    image when the dataset has one (SerpApi's Google Lens searches by URL).
    """

    pixels: np.ndarray
    url: str | None = None

    @cached_property
    def digest(self) -> str:
        """`search.keys.image_digest` of the pixels, computed once however many layers need it."""
        from mmsearch_gym.search.keys import image_digest

        return image_digest(self.pixels)

    def __post_init__(self) -> None:
        pixels = self.pixels
        if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 3
                and pixels.shape[2] == 3):
            raise ValueError(
                "QueryImage.pixels must be an RGB uint8 array of shape (H, W, 3), got "
                f"{getattr(pixels, 'dtype', type(pixels))} {getattr(pixels, 'shape', '')}"
            )


@runtime_checkable
class SearchBackend(Protocol):
    """A search tool. Implementations must be deterministic for a given `backend_id` where they can,
    and must not raise for a query the model wrote: failures come back as `SearchResults.error`
    (the environment also turns exceptions into tool errors, as a last line of defence)."""

    @property
    def backend_id(self) -> str:
        """Name plus every parameter that changes results (caches are namespaced by it)."""
        ...

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults: ...

    def text_search(self, query: str, top_k: int) -> SearchResults: ...
