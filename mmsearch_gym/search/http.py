"""Shared HTTP plumbing for the live search backends (SerpApi, SearXNG, page readers, summarizer).

Why one module: every live call must behave the same way under failure — bounded time (httpx
timeouts plus an overall deadline), bounded size (bodies are streamed and cut or refused past
`max_bytes`, never read whole first), bounded load (a semaphore caps concurrent requests), retries
with exponential backoff and jitter on 429/5xx/timeouts only (tenacity), and no secret in any
message. A search tool that raises or hangs would stall an RL rollout; one whose error text holds an
API key would write it into caches and run logs. Errors therefore surface as `HttpError`, whose
message is already redacted, and the backends turn them into `SearchResults.failed(...)`.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import random
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping, TypeVar
from urllib.parse import quote, quote_plus, urljoin

import httpx
import tenacity

log = logging.getLogger("mmsearch_gym.search")

T = TypeVar("T")
Oversize = Literal["refuse", "truncate"]

# --------------------------------------------------------------------------------------------------
# Secrets and redaction
# --------------------------------------------------------------------------------------------------

_SECRETS: set[str] = set()
_SECRETS_LOCK = threading.Lock()
_MIN_SECRET_LEN = 4  # shorter values would redact ordinary words; real keys are far longer

_SECRET_PARAM = re.compile(
    r"(?i)\b(api[_-]?key|apikey|key|token|access[_-]?token|auth|password|passwd|secret|sig|signature)"
    r"(=|%3D|:\s*|\"\s*:\s*\"|'\s*:\s*')([^&\s'\"#,;}]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]+(:[^/\s@]*)?@")
REDACTED = "***"


def register_secret(value: str) -> None:
    """Remember a secret value so `redact` removes it wherever it appears, whatever the context
    (a server echoing the query string, an exception of a third-party client, ...)."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET_LEN:
        with _SECRETS_LOCK:
            _SECRETS.update({value, quote(value, safe=""), quote_plus(value)})


def redact(text: object) -> str:
    """`str(text)` with credentials removed: registered secret values, `api_key=`/`token=`-style
    parameters, `Bearer`/`Basic` credentials and `user:password@` in URLs."""
    out = str(text)
    with _SECRETS_LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, REDACTED)
    out = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", out)
    return _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", out)


class Secret:
    """A credential held in memory only.

    Why a wrapper: its repr/str never show the value, it refuses to be pickled (so a backend cannot
    end up inside a pickled cache or checkpoint with the key in it), and creating one registers the
    value for `redact`. Call `reveal()` at the single place the value is sent.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a secret must be a non-empty string")
        self._value = value.strip()
        register_secret(self._value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("refusing to pickle a Secret (an API key must never be written to disk); "
                        "construct the backend in the process that uses it")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self


def secret_from(value: str | Secret | None, env_var: str | None) -> Secret | None:
    """The secret given as an argument, else the one in `env_var` (read now), else None."""
    if isinstance(value, Secret):
        return value
    if value is not None:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("api_key must be a non-empty string when given (got an empty or non-str value)")
        return Secret(value)
    raw = os.environ.get(env_var, "") if env_var else ""
    return Secret(raw) if raw.strip() else None


class RedactingFilter(logging.Filter):
    """Rewrites log records of HTTP libraries (which log full request URLs, query string included)
    so that no logged line carries a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_LOGGERS_TO_REDACT = ("mmsearch_gym.search", "httpx", "httpcore", "httpcore.connection", "httpcore.http11",
                      "httpcore.proxy", "urllib3", "urllib3.connectionpool", "urllib3.util.retry",
                      "requests", "tenacity", "trafilatura")
_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the redacting filter to the loggers that see request URLs (idempotent).

    Logger filters apply only to records created by that exact logger, hence the explicit list."""
    for name in _LOGGERS_TO_REDACT:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


install_log_redaction()

# --------------------------------------------------------------------------------------------------
# Errors and retries
# --------------------------------------------------------------------------------------------------

RETRYABLE_STATUSES = frozenset({408, 425, 429})


class HttpError(Exception):
    """A failed HTTP exchange. The message is redacted on construction, so it is safe to show,
    log or store. `retryable` marks transient failures (429, 5xx, timeouts, dropped connections)."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after_s: float | None = None, body: bytes = b"") -> None:
        super().__init__(redact(message))
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.body = body

    @property
    def message(self) -> str:
        return str(self)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures.

    Wait before attempt n+1 = min(max_wait_s, initial_wait_s * 2**(n-1)) + uniform(0, jitter_s),
    raised to a server's Retry-After (capped at max_wait_s). Jitter keeps parallel rollouts that hit
    a 429 together from retrying in lockstep. Tests pass tiny waits.
    """

    max_attempts: int = 4
    initial_wait_s: float = 1.0
    max_wait_s: float = 20.0
    jitter_s: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts must be an int >= 1, got {self.max_attempts!r}")
        for name in ("initial_wait_s", "max_wait_s", "jitter_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0, got {value!r}")

    def wait_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to sleep after failed attempt number `attempt` (1-based)."""
        delay = min(self.max_wait_s, self.initial_wait_s * 2 ** max(0, attempt - 1))
        delay += random.uniform(0, self.jitter_s) if self.jitter_s else 0.0
        if retry_after_s is not None and retry_after_s > 0:
            delay = max(delay, min(retry_after_s, self.max_wait_s))
        return delay


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, HttpError) and exc.retryable


def call_with_retries(fn: Callable[[], T], policy: RetryPolicy, *, what: str) -> T:
    """Run `fn`, retrying retryable `HttpError`s per `policy`; re-raises the last error.

    When retries are exhausted the last error is re-raised with the attempt count in its message."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.wait_s(state.attempt_number, getattr(exc, "retry_after_s", None))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: attempt %d/%d failed (%s); retrying", what, state.attempt_number,
                    policy.max_attempts, redact(exc))

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(policy.max_attempts), wait=wait,
                                 retry=tenacity.retry_if_exception(_is_retryable), reraise=True,
                                 before_sleep=before_sleep)
    try:
        return retrying(fn)
    except HttpError as exc:
        if exc.retryable and policy.max_attempts > 1:
            raise HttpError(f"{exc} (gave up after {policy.max_attempts} attempts)", status=exc.status,
                            retryable=False, body=exc.body) from None
        raise


# --------------------------------------------------------------------------------------------------
# Client factory and fetcher
# --------------------------------------------------------------------------------------------------

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
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"HttpSettings.{name} must be a finite number > 0, got {value!r}")
        for name in ("max_bytes", "max_concurrency"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"HttpSettings.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.max_redirects, int) or self.max_redirects < 0:
            raise ValueError(f"HttpSettings.max_redirects must be an int >= 0, got {self.max_redirects!r}")
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
                            f"{len(self.body)} bytes, starts {self.body[:60]!r})") from None


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header value (delta-seconds or an HTTP date); None when
    absent or unreadable. Shared by every HTTP client of the package (search, agents, judge)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    return retry_after_seconds(headers.get("retry-after"))


def check_http_url(url: str, what: str = "URL") -> str:
    """`url` if it is an absolute http(s) URL; ValueError naming the bad value otherwise."""
    if not isinstance(url, str) or not re.match(r"(?i)^https?://[^/\s]+", url.strip()):
        raise ValueError(f"{what} must be an absolute http(s) URL, got {redact(repr(url))}")
    return url.strip()


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
            excerpt = body[:300].decode("utf-8", errors="replace").strip()
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
