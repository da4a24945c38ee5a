"""Page readers: turn a search result's URL into the page's main text for the summarizer.

Two routes, because MMSearch-R1 used a hosted reader and many users cannot or will not:
- `JinaReader`: any JINA-Reader-compatible endpoint (``GET {base_url}/{page_url}`` returns the page as
  text/markdown): the hosted https://r.jina.ai or a self-hosted one. Rendering JavaScript and
  stripping boilerplate happen on that server.
- `LocalExtractor`: fetch the page ourselves (httpx, streamed, size-limited) and extract the main
  text with trafilatura. No third party sees the URLs; JavaScript-only pages come back empty.

A reader raises `ReadError` or `HttpError` (messages redacted); the text pipeline then skips the page.
`public_hosts_only` (the private-host refusal) lives in `mmsearch_gym.net.fetch`; re-exported here.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mmsearch_gym.checks import require_int
from mmsearch_gym.net.fetch import HttpFetcher, Oversize, check_http_url, public_hosts_only
from mmsearch_gym.net.secrets import Secret, redact, secret_from
from mmsearch_gym.search.costs import UsageMeter

DEFAULT_MAX_CHARS = 100_000

__all__ = ["DEFAULT_MAX_CHARS", "JinaReader", "LocalExtractor", "PageReader", "ReadError", "public_hosts_only"]


class ReadError(Exception):
    """A page could not be turned into text (empty, unsupported type, no main content)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


@runtime_checkable
class PageReader(Protocol):
    """Fetches a page and returns its main text. `reader_id` names the reader and every setting that
    changes the text (it becomes part of a text backend's `backend_id`)."""

    @property
    def reader_id(self) -> str: ...

    def read(self, url: str) -> str: ...


def _strip_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def _check_oversize(oversize: str) -> Oversize:
    if oversize not in ("refuse", "truncate"):
        raise ValueError(f"oversize must be 'refuse' or 'truncate', got {oversize!r}")
    return oversize  # type: ignore[return-value]


class JinaReader:
    """Reads pages through a JINA-Reader-compatible endpoint: ``GET {base_url}/{page_url}``.

    base_url: the reader service (default the hosted https://r.jina.ai; set your self-hosted one).
    api_key: sent as ``Authorization: Bearer``; default from env `JINA_API_KEY` (optional for the
        hosted service at low rates, usually unneeded self-hosted). Never shown in ids or messages.
    return_format: sent as ``X-Return-Format`` (e.g. "text", "markdown") when given.
    max_bytes / oversize: responses larger than max_bytes are refused (default) or cut.
    max_chars: the returned text is cut to this many characters.
    Each request sent counts as a ``jina_reader`` call on `meter` (price 0 unless configured).
    """

    DEFAULT_BASE_URL = "https://r.jina.ai"

    def __init__(self, base_url: str = DEFAULT_BASE_URL, *, api_key: str | Secret | None = None,
                 api_key_env: str | None = "JINA_API_KEY", return_format: str | None = None,
                 max_chars: int = DEFAULT_MAX_CHARS, max_bytes: int | None = None, oversize: str = "refuse",
                 fetcher: HttpFetcher | None = None, meter: UsageMeter | None = None) -> None:
        self.base_url = check_http_url(base_url, "JinaReader base_url").rstrip("/")
        self._api_key = secret_from(api_key, api_key_env)
        if return_format is not None and (not isinstance(return_format, str) or not return_format.strip()):
            raise ValueError(f"return_format must be a non-empty string or None, got {return_format!r}")
        self.return_format = return_format
        self.max_chars = require_int("max_chars", max_chars, low=1)
        self.max_bytes = None if max_bytes is None else require_int("max_bytes", max_bytes, low=1)
        self.oversize = _check_oversize(oversize)
        self.fetcher = fetcher or HttpFetcher()
        self.meter = meter or UsageMeter()

    @property
    def reader_id(self) -> str:
        fmt = f",format={self.return_format}" if self.return_format else ""
        return redact(f"jina({self.base_url}{fmt},max_chars={self.max_chars})")

    def __repr__(self) -> str:
        return f"JinaReader({self.reader_id})"

    def read(self, url: str) -> str:
        page = _strip_fragment(check_http_url(url, "page URL"))
        headers = {"Accept": "text/plain, text/markdown;q=0.9, */*;q=0.1"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"
        if self.return_format:
            headers["X-Return-Format"] = self.return_format
        fetched = self.fetcher.request("GET", f"{self.base_url}/{page}", what=f"reader for {page}", headers=headers,
                                       max_bytes=self.max_bytes, oversize=self.oversize,
                                       on_attempt=lambda: self.meter.record("jina_reader"))
        text = fetched.text().strip()
        if not text:
            raise ReadError(f"reader returned an empty page for {page}")
        return text[:self.max_chars]

    def usage(self) -> dict[str, object]:
        return self.meter.usage()


_HTML_TYPES = frozenset({"", "text/html", "application/xhtml+xml", "application/xml", "text/xml"})
_TEXT_TYPES = frozenset({"text/plain", "text/markdown"})


class LocalExtractor:
    """Fetches pages itself (httpx, streamed under `max_bytes`) and extracts the main text with
    trafilatura (HTML) or keeps plain text as is; other content types (PDF, images) are refused.

    allow_private_hosts: fetch localhost/private-IP URLs too (tests, intranet corpora); off by
        default, see `public_hosts_only`.
    Nothing is billed, so nothing is counted.
    """

    def __init__(self, *, max_chars: int = DEFAULT_MAX_CHARS, max_bytes: int | None = None,
                 oversize: str = "refuse", include_tables: bool = True, allow_private_hosts: bool = False,
                 fetcher: HttpFetcher | None = None) -> None:
        import trafilatura  # fail at construction, not at the first page, when it is missing

        self._trafilatura = trafilatura
        self.max_chars = require_int("max_chars", max_chars, low=1)
        self.max_bytes = None if max_bytes is None else require_int("max_bytes", max_bytes, low=1)
        self.oversize = _check_oversize(oversize)
        self.include_tables = bool(include_tables)
        self.allow_private_hosts = bool(allow_private_hosts)
        self.fetcher = fetcher or HttpFetcher()
        self.meter = UsageMeter()

    @property
    def reader_id(self) -> str:
        version = getattr(self._trafilatura, "__version__", "?")
        return (f"local(trafilatura={version},tables={int(self.include_tables)},"
                f"max_chars={self.max_chars})")

    def __repr__(self) -> str:
        return f"LocalExtractor({self.reader_id})"

    def read(self, url: str) -> str:
        page = _strip_fragment(check_http_url(url, "page URL"))
        fetched = self.fetcher.request(
            "GET", page, what=f"page {page}", max_bytes=self.max_bytes, oversize=self.oversize,
            headers={"Accept": "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"},
            url_guard=None if self.allow_private_hosts else public_hosts_only)
        content_type = fetched.content_type
        if content_type in _TEXT_TYPES:
            text = fetched.text()
        elif content_type in _HTML_TYPES:
            text = self._trafilatura.extract(fetched.body, url=fetched.url, include_comments=False,
                                             include_tables=self.include_tables) or ""
        else:
            raise ReadError(f"page {page} has unsupported content type {content_type!r}")
        text = text.strip()
        if not text:
            raise ReadError(f"no main text found in {page}")
        return text[:self.max_chars]

    def usage(self) -> dict[str, object]:
        return self.meter.usage()
