"""The bounded fetcher: every live HTTP request of the package runs through `HttpFetcher`.

Why: a search tool that raises or hangs would stall an RL rollout, and one that reads an unbounded
body could exhaust memory. So every request is bounded in time (httpx timeouts plus an overall
deadline), in size (bodies are streamed and cut or refused past `max_bytes`, never read whole first),
in load (a semaphore caps concurrent requests) and in redirects (followed by hand, each hop checked
by an optional `url_guard` such as `public_hosts_only`, which refuses private hosts). Transient
failures are retried per `net.retry`; errors surface as redacted `HttpError`s.
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping
from urllib.parse import urljoin, urlsplit

import httpx

from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.net.retry import HttpError, RetryPolicy, call_with_retries, is_retryable_status, retry_after_seconds
from mmsearch_gym.net.secrets import redact, redacted_excerpt

__all__ = [
    "DEFAULT_USER_AGENT", "Fetched", "HttpFetcher", "HttpSettings", "Oversize", "check_http_url", "make_client",
    "public_hosts_only",
]

Oversize = Literal["refuse", "truncate"]

DEFAULT_USER_AGENT = "mmsearch-gym/0.1 (search tool for VQA research)"


@dataclass(frozen=True)
class HttpSettings:
    """Limits every live request runs under.

    connect/read timeouts bound each network wait; `total_timeout_s` bounds a whole response
    (a server trickling bytes defeats a read timeout); `max_bytes` bounds a body; `max_concurrency`
    is the size of the fetcher's semaphore; `max_redirects` bounds redirect chains.
    """

    connect_timeout_s: float = 5.0
    read_timeout_s: float = 20.0
    total_timeout_s: float = 60.0
    max_bytes: int = 5_000_000
    max_concurrency: int = 8
    max_redirects: int = 5
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = DEFAULT_USER_AGENT
    trust_env: bool = True

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "total_timeout_s"):
            require_number(f"HttpSettings.{name}", getattr(self, name), low=0.0, low_inclusive=False)
        for name in ("max_bytes", "max_concurrency"):
            require_int(f"HttpSettings.{name}", getattr(self, name), low=1)
        require_int("HttpSettings.max_redirects", self.max_redirects, low=0)
        if not isinstance(self.retry, RetryPolicy):
            raise ValueError(f"HttpSettings.retry must be a RetryPolicy, got {self.retry!r}")

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout_s, read=self.read_timeout_s,
                             write=self.read_timeout_s, pool=self.total_timeout_s)


def make_client(settings: HttpSettings | None = None, *,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The one way live backends build an httpx client: timeouts, pool size matched to the
    concurrency limit, our user agent, and redirects handled by `HttpFetcher` (so that every hop
    is size-limited and checked)."""
    settings = settings or HttpSettings()
    limits = httpx.Limits(max_connections=settings.max_concurrency * 2,
                          max_keepalive_connections=settings.max_concurrency)
    return httpx.Client(timeout=settings.timeout, limits=limits, follow_redirects=False,
                        headers={"User-Agent": settings.user_agent}, trust_env=settings.trust_env,
                        transport=transport)


@dataclass(frozen=True)
class Fetched:
    """A successful (2xx) response, body read up to the size limit."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str:
        match = re.search(r"charset=([\w.:-]+)", self.headers.get("content-type", ""), re.I)
        return match.group(1) if match else "utf-8"

    def text(self) -> str:
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self, what: str) -> Any:
        """Parsed JSON body; a body that is not JSON raises a (non-retryable) `HttpError`."""
        if self.truncated:
            raise HttpError(f"{what} returned a JSON body larger than the size limit")
        try:
            return json.loads(self.body)
        except ValueError:
            raise HttpError(f"{what} returned malformed JSON (HTTP {self.status}, "
                            f"{len(self.body)} bytes, starts {redacted_excerpt(self.body, 60)!r})") from None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    return retry_after_seconds(headers.get("retry-after"))


def check_http_url(url: str, what: str = "URL") -> str:
    """`url` if it is an absolute http(s) URL; ValueError naming the bad value otherwise."""
    if not isinstance(url, str) or not re.match(r"(?i)^https?://[^/\s]+", url.strip()):
        raise ValueError(f"{what} must be an absolute http(s) URL, got {redact(repr(url))}")
    return url.strip()


def public_hosts_only(url: str) -> None:
    """Refuses URLs whose host is ``localhost`` or a literal private, loopback, link-local or reserved
    IP address. Search results are untrusted input; this stops a result from making the extractor
    read e.g. a cloud metadata endpoint. It does not resolve names (no protection against DNS that
    points at private addresses): run untrusted crawls in a sandboxed network for that."""
    host = (urlsplit(url).hostname or "").strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        raise HttpError(f"refusing to fetch {url}: host is local")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if not address.is_global or address.is_multicast:
        raise HttpError(f"refusing to fetch {url}: {address} is not a public address")


class HttpFetcher:
    """Sends requests under one `HttpSettings`: shared httpx client, concurrency semaphore,
    retries, streamed size limits, manual redirects.

    Share one fetcher between backends, readers and summarizers to share the concurrency limit and
    the connection pool. `send` is one attempt (no semaphore, no retry); `request` is what callers
    normally use. `url_guard` (if given) is called with every URL, redirects included, and may
    raise `HttpError` to forbid it.
    """

    def __init__(self, settings: HttpSettings | None = None, *, semaphore: threading.Semaphore | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._semaphore = semaphore or threading.BoundedSemaphore(self.settings.max_concurrency)
        self._transport = transport
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return (f"HttpFetcher(max_concurrency={self.settings.max_concurrency}, "
                f"max_bytes={self.settings.max_bytes})")

    @property
    def client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = make_client(self.settings, transport=self._transport)
            return self._client

    @contextmanager
    def limit(self) -> Iterator[None]:
        """Hold one concurrency slot (also used around requests sent by other clients)."""
        with self._semaphore:
            yield

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, url: str, *, what: str, params: Mapping[str, str] | None = None,
                json_body: Any = None, headers: Mapping[str, str] | None = None, max_bytes: int | None = None,
                oversize: Oversize = "refuse", on_attempt: Callable[[], None] | None = None,
                url_guard: Callable[[str], None] | None = None, retry: RetryPolicy | None = None) -> Fetched:
        """Send with retries (per `retry` or the settings' policy), one semaphore slot per attempt
        (released while backing off). `on_attempt` runs before every attempt actually sent
        (cost accounting counts attempts). Raises `HttpError`."""

        def attempt() -> Fetched:
            with self.limit():
                if on_attempt is not None:
                    on_attempt()
                return self.send(method, url, what=what, params=params, json_body=json_body, headers=headers,
                                 max_bytes=max_bytes, oversize=oversize, url_guard=url_guard)

        return call_with_retries(attempt, retry or self.settings.retry, what=what)

    def send(self, method: str, url: str, *, what: str, params: Mapping[str, str] | None = None,
             json_body: Any = None, headers: Mapping[str, str] | None = None, max_bytes: int | None = None,
             oversize: Oversize = "refuse", url_guard: Callable[[str], None] | None = None) -> Fetched:
        """One attempt, following up to `max_redirects` redirects (GET/HEAD only). Raises `HttpError`."""
        limit = self.settings.max_bytes if max_bytes is None else max_bytes
        if oversize not in ("refuse", "truncate"):
            raise ValueError(f"oversize must be 'refuse' or 'truncate', got {oversize!r}")
        deadline = time.monotonic() + self.settings.total_timeout_s
        current = url
        for _hop in range(self.settings.max_redirects + 1):
            if url_guard is not None:
                url_guard(current)
            location = None
            try:
                with self.client.stream(method, current, params=params, json=json_body,
                                        headers=dict(headers or {})) as response:
                    if response.is_redirect and method in ("GET", "HEAD") and "location" in response.headers:
                        location = urljoin(str(response.url), response.headers["location"])
                    else:
                        return self._read(response, what, limit, oversize, deadline)
            except httpx.TimeoutException:
                raise HttpError(f"{what} timed out (connect {self.settings.connect_timeout_s}s / "
                                f"read {self.settings.read_timeout_s}s)", retryable=True) from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise HttpError(f"{what}: bad URL {current!r} ({exc})") from None
            except httpx.TransportError as exc:
                raise HttpError(f"{what}: connection failed ({type(exc).__name__}: {exc})",
                                retryable=True) from None
            except httpx.StreamError as exc:
                raise HttpError(f"{what}: stream error ({type(exc).__name__}: {exc})") from None
            current, params = location, None  # the Location already carries its query
        raise HttpError(f"{what}: more than {self.settings.max_redirects} redirects")

    def _read(self, response: httpx.Response, what: str, limit: int, oversize: Oversize,
              deadline: float) -> Fetched:
        status = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        if not 200 <= status <= 299:
            body = self._take(response, 65_536, deadline, what)[0]
            excerpt = redacted_excerpt(body.strip(), 300)
            raise HttpError(f"{what} returned HTTP {status}" + (f": {excerpt}" if excerpt else ""),
                            status=status, retryable=is_retryable_status(status),
                            retry_after_s=_retry_after(headers), body=body)
        declared = headers.get("content-length", "")
        if oversize == "refuse" and declared.isdigit() and int(declared) > limit:
            raise HttpError(f"{what}: response of {int(declared)} bytes exceeds the limit of {limit} bytes")
        body, truncated = self._take(response, limit, deadline, what)
        if truncated and oversize == "refuse":
            raise HttpError(f"{what}: response exceeds the limit of {limit} bytes")
        return Fetched(url=str(response.url), status=status, headers=headers, body=body, truncated=truncated)

    @staticmethod
    def _take(response: httpx.Response, limit: int, deadline: float, what: str) -> tuple[bytes, bool]:
        """Read at most `limit` bytes, stopping at the deadline; True when the body was longer."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            if time.monotonic() > deadline:
                raise HttpError(f"{what}: response took longer than the total time limit", retryable=True)
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(chunks)[:limit], True
        return b"".join(chunks), False
