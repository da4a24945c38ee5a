"""Text search through a self-hosted SearXNG instance (``GET {base_url}/search?q=...&format=json``).

Why: SerpApi costs money per search and needs an account; a SearXNG container is free and private.
Its results then go through the same reader → summarizer pipeline as SerpApi's (or stay as the
engines' snippets), so the policy sees the same kind of text either way. SearXNG has no image search
by image, so `image_search` returns an error result; pair it with an image backend via
`mmsearch_gym.search.serpapi.CombinedSearch`.

The JSON format must be enabled on the instance (``search: formats: [html, json]`` in settings.yml);
otherwise SearXNG answers 403, which is reported with that hint.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from mmsearch_gym.checks import require_int
from mmsearch_gym.net.fetch import HttpFetcher, HttpSettings, check_http_url
from mmsearch_gym.net.retry import HttpError
from mmsearch_gym.net.secrets import redact
from mmsearch_gym.search.costs import UsageMeter, usage_of
from mmsearch_gym.search.reader import PageReader
from mmsearch_gym.search.summarizer import Candidate, Summarizer, check_pipeline, pipeline_results
from mmsearch_gym.search.types import QueryImage, SearchResults

log = logging.getLogger("mmsearch_gym.search")

_SAFESEARCH = (0, 1, 2)
_TIME_RANGES = (None, "day", "week", "month", "year")


def _names(label: str, values: Sequence[str] | str | None) -> tuple[str, ...]:
    """Engine/category names as a sorted set (SearXNG treats them as a set), so ids do not depend on order."""
    if values is None:
        return ()
    items = values.split(",") if isinstance(values, str) else list(values)
    for value in items:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{label} must be non-empty names, got {values!r}")
    return tuple(sorted({v.strip() for v in items}))


class SearxngTextSearch:
    """Text search with SearXNG's JSON API; results in SearXNG's order, duplicates by URL dropped.

    base_url: the instance root, e.g. "http://localhost:8888" (credentials in it are redacted from ids).
    engines / categories / language / safesearch / time_range: SearXNG search parameters; they change
        results, so they are part of `backend_id`, as are the reader's and summarizer's ids.
    reader + summarizer: page summaries (a failed page is skipped); neither: the engines' snippets.
    settings / fetcher: timeouts, retries, size and concurrency limits (`HttpSettings`).
    meter: each request sent counts as ``searxng`` (price 0 unless configured: self-hosted).
    """

    name = "searxng-text"

    def __init__(self, base_url: str, *, reader: PageReader | None = None, summarizer: Summarizer | None = None,
                 engines: Sequence[str] | None = None, categories: Sequence[str] | None = None,
                 language: str | None = None, safesearch: int = 0, time_range: str | None = None,
                 settings: HttpSettings | None = None, fetcher: HttpFetcher | None = None,
                 meter: UsageMeter | None = None, page_workers: int = 4, max_bytes: int = 5_000_000) -> None:
        self.base_url = check_http_url(base_url, "SearxngTextSearch base_url").rstrip("/")
        check_pipeline(reader, summarizer)
        if safesearch not in _SAFESEARCH or isinstance(safesearch, bool):
            raise ValueError(f"safesearch must be 0, 1 or 2, got {safesearch!r}")
        if time_range not in _TIME_RANGES:
            raise ValueError(f"time_range must be one of {_TIME_RANGES}, got {time_range!r}")
        if language is not None and (not isinstance(language, str) or not language.strip()):
            raise ValueError(f"language must be a non-empty string or None, got {language!r}")
        page_workers = require_int("page_workers", page_workers, low=1)
        self.engines, self.categories = _names("engines", engines), _names("categories", categories)
        self.language, self.safesearch, self.time_range = language, safesearch, time_range
        self.reader, self.summarizer, self.page_workers = reader, summarizer, page_workers
        self.fetcher = fetcher or HttpFetcher(settings)
        self.meter = meter or UsageMeter()
        self.max_bytes = require_int("max_bytes", max_bytes, low=1)

    @property
    def backend_id(self) -> str:
        parts = [f"base={self.base_url}"]
        if self.engines:
            parts.append("engines=" + "+".join(self.engines))
        if self.categories:
            parts.append("categories=" + "+".join(self.categories))
        if self.language:
            parts.append(f"language={self.language}")
        parts.append(f"safesearch={self.safesearch}")
        if self.time_range:
            parts.append(f"time_range={self.time_range}")
        if self.reader is None or self.summarizer is None:
            parts.append("pages=snippets")
        else:
            parts += [f"reader={self.reader.reader_id}", f"summarizer={self.summarizer.summarizer_id}"]
        return redact(f"{self.name}:" + ",".join(parts))

    def __repr__(self) -> str:
        return f"SearxngTextSearch({self.backend_id})"

    def usage(self) -> dict[str, object]:
        return usage_of(self.meter, getattr(self.reader, "meter", None), getattr(self.summarizer, "meter", None))

    def close(self) -> None:
        self.fetcher.close()

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults:
        return SearchResults.failed("image", "image search is not available from SearXNG (text search only)")

    def text_search(self, query: str, top_k: int) -> SearchResults:
        try:
            return self._text_search(query, top_k)
        except HttpError as exc:
            log.warning("searxng text search failed: %s", exc)
            return SearchResults.failed("text", f"text search failed: {exc}")
        except Exception as exc:
            message = redact(f"text search failed: {type(exc).__name__}: {exc}")
            log.warning("searxng %s", message)
            return SearchResults.failed("text", message)

    def _params(self, query: str) -> dict[str, str]:
        params = {"q": query, "format": "json", "safesearch": str(self.safesearch)}
        if self.engines:
            params["engines"] = ",".join(self.engines)
        if self.categories:
            params["categories"] = ",".join(self.categories)
        if self.language:
            params["language"] = self.language
        if self.time_range:
            params["time_range"] = self.time_range
        return params

    def _text_search(self, query: str, top_k: int) -> SearchResults:
        top_k = require_int("top_k", top_k, low=1)
        if not isinstance(query, str) or not query.strip():
            return SearchResults.failed("text", "text search needs a non-empty query")
        query = query.strip()
        try:
            fetched = self.fetcher.request("GET", f"{self.base_url}/search", what="SearXNG search",
                                           params=self._params(query), max_bytes=self.max_bytes,
                                           headers={"Accept": "application/json"},
                                           on_attempt=lambda: self.meter.record("searxng"))
        except HttpError as exc:
            if exc.status == 403:
                raise HttpError(f"{exc} — is the JSON format enabled? Add 'json' under search.formats in the "
                                "instance's settings.yml") from None
            raise
        data = fetched.json("SearXNG search")
        if not isinstance(data, dict) or not isinstance(data.get("results", []), list):
            raise HttpError(f"SearXNG returned JSON without a 'results' list (got {type(data).__name__})")
        candidates = [Candidate(str(r.get("title") or ""), r["url"], str(r.get("content") or ""))
                      for r in data.get("results", []) if isinstance(r, dict) and isinstance(r.get("url"), str)]
        if not candidates:
            failed = _unresponsive(data.get("unresponsive_engines"))
            if failed:
                return SearchResults.failed("text", f"text search failed: no results; SearXNG engines failed: {failed}")
        return pipeline_results(query, candidates, top_k, self.reader, self.summarizer, max_workers=self.page_workers)


def _unresponsive(value: Any) -> str:
    """SearXNG lists failed engines as [[name, reason], ...]."""
    if not isinstance(value, list):
        return ""
    parts = []
    for entry in value[:5]:
        if isinstance(entry, (list, tuple)) and entry:
            parts.append(f"{entry[0]} ({entry[1]})" if len(entry) > 1 else str(entry[0]))
        elif isinstance(entry, str):
            parts.append(entry)
    return ", ".join(parts)

