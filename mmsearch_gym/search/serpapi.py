"""Live search through SerpApi (DESIGN §5): Google Lens for image search, Google web search → page
reader → summarizer for text search — the tools MMSearch-R1 trained with.

Transport: the official `serpapi` client (default) or our bounded httpx fetcher (``transport="httpx"``);
see `search.serpapi_transport`. `CombinedSearch` (in `search.combined`) pairs an image backend with a
text backend; both names are re-exported here.

Either way: retries with backoff on 429/5xx/timeouts, one concurrency slot per request, every request
sent counted on the `UsageMeter` as a billable attempt, failures returned as
`SearchResults.failed(...)`, and the API key (argument or env `SERPAPI_API_KEY`) kept in memory only:
never in `backend_id`, repr, logs, error results or pickles.
"""

from __future__ import annotations

import logging
import base64
import binascii
import dataclasses
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

from mmsearch_gym.checks import require_int
from mmsearch_gym.net.fetch import HttpFetcher, HttpSettings, check_http_url
from mmsearch_gym.net.retry import HttpError, call_with_retries
from mmsearch_gym.net.secrets import Secret, redact, secret_from
from mmsearch_gym.search.combined import CombinedSearch
from mmsearch_gym.search.costs import SERPAPI_PREFIX, UsageMeter, usage_of
from mmsearch_gym.search.keys import image_digest
from mmsearch_gym.search.reader import PageReader
from mmsearch_gym.search.serpapi_transport import (DEFAULT_BASE_URL, HttpxTransport, OfficialClientTransport,
                                                   SerpApiTransport)
from mmsearch_gym.search.summarizer import Candidate, Summarizer, check_pipeline, pipeline_results
from mmsearch_gym.search.types import EncodedImage, QueryImage, SearchItem, SearchKind, SearchResults

log = logging.getLogger("mmsearch_gym.search")

__all__ = [
    "API_KEY_ENV", "DEFAULT_BASE_URL", "CombinedSearch", "HttpxTransport", "OfficialClientTransport",
    "SerpApiImageSearch", "SerpApiTextSearch", "SerpApiTransport", "thumbnail_image",
]

API_KEY_ENV = "SERPAPI_API_KEY"
DEFAULT_THUMBNAIL_MAX_BYTES = 2_000_000
_NO_RESULTS = "hasn't returned any results"
_RESERVED_PARAMS = frozenset({"api_key", "engine", "q", "url", "output"})


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------


def _check_params(params: Mapping[str, str | None]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if not isinstance(key, str) or not isinstance(value, str) or not value.strip():
            raise ValueError(f"SerpApi parameter {key!r} must be a non-empty string or None, got {value!r}")
        if key in _RESERVED_PARAMS:
            raise ValueError(f"SerpApi parameter {key!r} is set by the backend and cannot be overridden")
        clean[key] = value.strip()
    return dict(sorted(clean.items()))


class _SerpApiBackend:
    """Key handling, transport, retries, accounting and ids shared by the two SerpApi backends."""

    engine: str
    name: str
    serves: SearchKind
    """The one kind of search this backend answers; the other gives an error result."""

    def __init__(self, api_key: str | Secret | None, *, require_key: bool, base_url: str,
                 transport: str | SerpApiTransport, settings: HttpSettings | None, fetcher: HttpFetcher | None,
                 meter: UsageMeter | None, params: Mapping[str, str | None]) -> None:
        self._api_key = secret_from(api_key, None)
        if require_key and self._api_key is None and secret_from(None, API_KEY_ENV) is None:
            raise ValueError(f"no SerpApi API key: set the {API_KEY_ENV} environment variable or pass api_key=")
        self.fetcher = fetcher or HttpFetcher(settings)
        self.settings = self.fetcher.settings if settings is None else settings
        if transport == "official":
            self.transport: SerpApiTransport = OfficialClientTransport(base_url, self.settings)
        elif transport == "httpx":
            self.transport = HttpxTransport(self.fetcher, base_url)
        elif hasattr(transport, "search") and hasattr(transport, "base_url"):
            self.transport = transport  # type: ignore[assignment]
        else:
            raise ValueError(f"transport must be 'official', 'httpx' or a SerpApiTransport, got {transport!r}")
        self.params = _check_params(params)
        self.meter = meter or UsageMeter()

    def _key(self) -> Secret | None:
        """The argument key, else env `SERPAPI_API_KEY` read at call time (so a key exported after
        construction works and none is kept when it comes from the environment)."""
        return self._api_key or secret_from(None, API_KEY_ENV)

    def _id_parts(self) -> list[str]:
        parts = [f"engine={self.engine}", *(f"{k}={v}" for k, v in self.params.items())]
        if self.transport.base_url != DEFAULT_BASE_URL:
            parts.append(f"base={self.transport.base_url}")
        return parts

    @property
    def backend_id(self) -> str:
        return redact(f"{self.name}:" + ",".join(self._id_parts()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.backend_id})"

    def usage(self) -> dict[str, object]:
        """Billable calls per engine and the estimated cost (see `mmsearch_gym.search.costs`)."""
        return usage_of(self.meter)

    def close(self) -> None:
        self.fetcher.close()

    def _search(self, params: Mapping[str, str], key: Secret) -> dict[str, Any]:
        """One SerpApi search with retries; returns the JSON object (empty of results when Google
        found nothing). Raises `HttpError` with a redacted message."""
        full = {"engine": self.engine, **self.params, **params}

        def attempt() -> Any:
            with self.fetcher.limit():
                self.meter.record(SERPAPI_PREFIX + self.engine)
                return self.transport.search(full, key)

        data = call_with_retries(attempt, self.settings.retry, what=f"SerpApi {self.engine} search")
        if not isinstance(data, dict):
            raise HttpError(f"SerpApi returned a JSON {type(data).__name__}, expected an object")
        error = data.get("error")
        if error:
            if _NO_RESULTS in str(error):
                return {}
            raise HttpError(f"SerpApi error: {error}")
        status = (data.get("search_metadata") or {}).get("status") if isinstance(data.get("search_metadata"), dict) else None
        if status == "Error":
            raise HttpError("SerpApi reported an error status without a message")
        return data

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults:
        return self._serve("image", top_k, lambda key, k: self._search_image(image, k, key))

    def text_search(self, query: str, top_k: int) -> SearchResults:
        return self._serve("text", top_k, lambda key, k: self._search_text(query, k, key))

    def _search_image(self, image: QueryImage, top_k: int, key: Secret) -> SearchResults:
        raise NotImplementedError  # the image backend's; `_serve` never calls it on the text backend

    def _search_text(self, query: str, top_k: int, key: Secret) -> SearchResults:
        raise NotImplementedError  # the text backend's

    def _serve(self, kind: SearchKind, top_k: int, search: Callable[[Secret, int], SearchResults]) -> SearchResults:
        """Run `search(key, top_k)` when this backend serves `kind`, with `top_k` checked and the key
        read; the other kind, a missing key and every failure are error results, never exceptions."""
        if kind != self.serves:
            return SearchResults.failed(kind, f"{kind} search is not available from the {self.serves} search backend")

        def run() -> SearchResults:
            checked = require_int("top_k", top_k, low=1)
            key = self._key()
            return self._missing_key(kind) if key is None else search(key, checked)

        return self._guarded(kind, run)

    def _guarded(self, kind: SearchKind, run: Callable[[], SearchResults]) -> SearchResults:
        """Every failure becomes an error result (redacted), never an exception."""
        try:
            return run()
        except HttpError as exc:
            log.warning("%s %s search failed: %s", self.name, kind, exc)
            return SearchResults.failed(kind, f"{kind} search failed: {exc}")
        except Exception as exc:
            log.warning("%s %s search failed unexpectedly: %s", self.name, kind, redact(f"{type(exc).__name__}: {exc}"))
            return SearchResults.failed(kind, redact(f"{kind} search failed: {type(exc).__name__}: {exc}"))

    def _missing_key(self, kind: SearchKind) -> SearchResults:
        return SearchResults.failed(kind, f"{kind} search is not configured: no SerpApi API key (set the "
                                          f"{API_KEY_ENV} environment variable or pass api_key=)")


def thumbnail_image(data: bytes) -> EncodedImage | None:
    """JPEG/PNG bytes kept as they are; other formats (WebP, GIF, ...) re-encoded as JPEG; bytes that
    are not a whole decodable image, or one over `imaging.MAX_IMAGE_PIXELS`, give None."""
    try:
        image = EncodedImage(data)
        decoded = image.to_pil()  # decodes every pixel: a truncated file fails here, not in the agent
        if image.mime_type in ("image/jpeg", "image/png"):
            return image
        return EncodedImage.from_pil(decoded, format="JPEG", quality=90)
    except (ValueError, TypeError, OSError):  # ImageError is a ValueError; EncodedImage refuses empty data
        return None


class SerpApiImageSearch(_SerpApiBackend):
    """Image search: SerpApi's Google Lens engine; the top-k ``visual_matches`` as
    ``SearchItem(title, link, snippet="", thumbnail)``, thumbnails downloaded (JPEG/PNG kept, other
    formats re-encoded as JPEG; a failed download keeps the item with ``thumbnail=None``).

    Google Lens searches by a *public image URL*. Routes, in order:
    1. `QueryImage.url`, when the dataset provides the image's public address (MMSearch-R1's data does).
    2. `uploader`: your callable ``(png_bytes) -> public_url``, e.g. put the PNG in your own S3/GCS
       bucket (public-read or a presigned GET URL valid a few minutes) or on any host you control.
       URLs are remembered per image (by pixel digest) so repeated searches upload once.
    Without either the search returns an error result saying what to configure. (SerpApi also has an
    image-upload API returning an ``image_id``; it is not wired in, as its billing and Lens support
    could not be checked here.)

    api_key: or env `SERPAPI_API_KEY` (read at each call if not given). A missing key gives an
        error result; `require_key=True` makes it a ValueError at construction instead.
    hl / country / extra_params: Google Lens parameters (part of `backend_id`).
    transport: "official" (the `serpapi` client, default) or "httpx"; see the module docstring.
    settings / fetcher: timeouts, retries, size and concurrency limits (`HttpSettings`).
    meter: counts every SerpApi request sent as ``serpapi/google_lens``.
    """

    engine = "google_lens"
    name = "serpapi-image"
    serves: SearchKind = "image"

    def __init__(self, api_key: str | Secret | None = None, *, uploader: Callable[[bytes], str] | None = None,
                 hl: str | None = "en", country: str | None = None, extra_params: Mapping[str, str] | None = None,
                 require_key: bool = False, base_url: str = DEFAULT_BASE_URL, transport: str | SerpApiTransport = "official",
                 settings: HttpSettings | None = None, fetcher: HttpFetcher | None = None, meter: UsageMeter | None = None,
                 thumbnail_max_bytes: int = DEFAULT_THUMBNAIL_MAX_BYTES, upload_cache_size: int = 1024) -> None:
        if uploader is not None and not callable(uploader):
            raise ValueError(f"uploader must be a callable (png_bytes) -> public URL, got {uploader!r}")
        thumbnail_max_bytes = require_int("thumbnail_max_bytes", thumbnail_max_bytes, low=1)
        super().__init__(api_key, require_key=require_key, base_url=base_url, transport=transport, settings=settings,
                         fetcher=fetcher, meter=meter, params={"hl": hl, "country": country, **(extra_params or {})})
        self.uploader = uploader
        self.thumbnail_max_bytes = thumbnail_max_bytes
        self._uploaded: OrderedDict[str, str] = OrderedDict()
        self._upload_cache_size = require_int("upload_cache_size", upload_cache_size, low=0)
        self._upload_lock = threading.Lock()

    def _search_image(self, image: QueryImage, top_k: int, key: Secret) -> SearchResults:
        url = self._image_url(image)
        if url is None:
            return SearchResults.failed("image", "image search is not configured: the query image has no public "
                                                 "URL (QueryImage.url) and no uploader is set; pass "
                                                 "SerpApiImageSearch(uploader=...) with a callable that uploads "
                                                 "PNG bytes and returns a public URL")
        data = self._search({"url": url}, key)
        matches = [m for m in data.get("visual_matches") or [] if isinstance(m, dict) and isinstance(m.get("link"), str)]
        matches = matches[:top_k]
        with ThreadPoolExecutor(max_workers=max(1, min(len(matches), self.settings.max_concurrency))) as pool:
            thumbs = list(pool.map(lambda m: self._thumbnail(m.get("thumbnail")), matches))
        return SearchResults("image", tuple(SearchItem(title=str(m.get("title") or ""), url=m["link"], snippet="",
                                                       thumbnail=t) for m, t in zip(matches, thumbs, strict=True)))

    def _image_url(self, image: QueryImage) -> str | None:
        if not isinstance(image, QueryImage):
            raise ValueError(f"image_search needs a QueryImage, got {type(image).__name__}")
        if image.url:
            return check_http_url(image.url, "QueryImage.url")
        if self.uploader is None:
            return None
        digest = image_digest(image.pixels)
        with self._upload_lock:
            if digest in self._uploaded:
                self._uploaded.move_to_end(digest)
                return self._uploaded[digest]
        try:
            url = self.uploader(EncodedImage.from_array(image.pixels, "PNG").data)
        except Exception as exc:
            raise HttpError(f"image upload failed ({type(exc).__name__}: {exc})") from None
        url = check_http_url(url, "the uploader's returned URL")
        with self._upload_lock:
            self._uploaded[digest] = url
            while len(self._uploaded) > self._upload_cache_size:
                self._uploaded.popitem(last=False)
        return url

    def _thumbnail(self, url: object) -> EncodedImage | None:
        if not isinstance(url, str) or not url:
            return None
        try:
            if url.startswith("data:image/") and ";base64," in url:
                data = base64.b64decode(url.split(";base64,", 1)[1], validate=False)
                return thumbnail_image(data) if len(data) <= self.thumbnail_max_bytes else None
            retry = dataclasses.replace(self.settings.retry, max_attempts=min(2, self.settings.retry.max_attempts))
            fetched = self.fetcher.request("GET", check_http_url(url, "thumbnail URL"), what="thumbnail download",
                                           max_bytes=self.thumbnail_max_bytes, retry=retry)
            return thumbnail_image(fetched.body)
        except (HttpError, ValueError, binascii.Error) as exc:
            log.info("thumbnail skipped: %s", redact(exc))
            return None


class SerpApiTextSearch(_SerpApiBackend):
    """Text search: SerpApi's Google engine ``organic_results``, in rank order; each page is read
    (`reader`) and summarised for the query (`summarizer`) until `top_k` pages succeed or results run
    out (a failed page is skipped). Without reader and summarizer the items carry Google's snippets.
    Items: ``SearchItem(title, link, summary_or_snippet)``.

    hl / gl / location / google_domain / extra_params: Google parameters (part of `backend_id`, as are
    the reader's and summarizer's ids). Other arguments as for `SerpApiImageSearch`; every SerpApi
    request sent is counted as ``serpapi/google``, and `usage()` includes the reader's and
    summarizer's meters.
    """

    engine = "google"
    name = "serpapi-text"
    serves: SearchKind = "text"

    def __init__(self, api_key: str | Secret | None = None, *, reader: PageReader | None = None,
                 summarizer: Summarizer | None = None, hl: str | None = "en", gl: str | None = None,
                 location: str | None = None, google_domain: str | None = None,
                 extra_params: Mapping[str, str] | None = None, require_key: bool = False,
                 base_url: str = DEFAULT_BASE_URL, transport: str | SerpApiTransport = "official",
                 settings: HttpSettings | None = None, fetcher: HttpFetcher | None = None,
                 meter: UsageMeter | None = None, page_workers: int = 4) -> None:
        check_pipeline(reader, summarizer)
        page_workers = require_int("page_workers", page_workers, low=1)
        super().__init__(api_key, require_key=require_key, base_url=base_url, transport=transport, settings=settings,
                         fetcher=fetcher, meter=meter,
                         params={"hl": hl, "gl": gl, "location": location, "google_domain": google_domain,
                                 **(extra_params or {})})
        self.reader, self.summarizer, self.page_workers = reader, summarizer, page_workers

    def _id_parts(self) -> list[str]:
        if self.reader is None or self.summarizer is None:
            return [*super()._id_parts(), "pages=snippets"]
        return [*super()._id_parts(), f"reader={self.reader.reader_id}", f"summarizer={self.summarizer.summarizer_id}"]

    def usage(self) -> dict[str, object]:
        return usage_of(self.meter, getattr(self.reader, "meter", None), getattr(self.summarizer, "meter", None))

    def _search_text(self, query: str, top_k: int, key: Secret) -> SearchResults:
        if not isinstance(query, str) or not query.strip():
            return SearchResults.failed("text", "text search needs a non-empty query")
        data = self._search({"q": query.strip()}, key)
        candidates = [Candidate(str(r.get("title") or ""), r["link"], str(r.get("snippet") or ""))
                      for r in data.get("organic_results") or []
                      if isinstance(r, dict) and isinstance(r.get("link"), str)]
        return pipeline_results(query.strip(), candidates, top_k, self.reader, self.summarizer,
                                max_workers=self.page_workers)
