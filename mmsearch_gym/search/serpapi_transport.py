"""SerpApi transports: one SerpApi request each, no retries (the backend retries), raising `HttpError`.

Why two: the official `serpapi` client (``serpapi.Client``, requests-based) is the default and can be
pointed at another host (a loopback test server, a proxy) through the client instance's
``BASE_DOMAIN``, which `OfficialClientTransport` sets from `base_url`. `HttpxTransport` speaks the
same wire format itself (``GET {base_url}/search.json?engine=...&api_key=...``) through our shared
bounded fetcher, to share one connection pool and concurrency limit with the page readers, or to cap
SerpApi response sizes (the official client always reads bodies whole). Both map statuses to
retryable or final errors the same way (an exhausted plan is final even when it comes as a 429).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Mapping, Protocol

from mmsearch_gym.net.fetch import HttpFetcher, HttpSettings, check_http_url
from mmsearch_gym.net.retry import HttpError, is_retryable_status, retry_after_seconds
from mmsearch_gym.net.secrets import Secret, redact, redacted_excerpt

__all__ = ["DEFAULT_BASE_URL", "HttpxTransport", "OfficialClientTransport", "SerpApiTransport"]

DEFAULT_BASE_URL = "https://serpapi.com"
_OUT_OF_SEARCHES = ("run out of searches", "plan limit", "searches per hour")


class SerpApiTransport(Protocol):
    """Sends one SerpApi search and returns the decoded JSON object; raises `HttpError`
    (`retryable` for 429/5xx/timeouts/connection failures)."""

    base_url: str

    def search(self, params: Mapping[str, str], api_key: Secret) -> Any: ...


def _status_error(status: int, message: str | None, retry_after: str | None = None) -> HttpError:
    text = (message or "").strip()
    retryable = is_retryable_status(status) and not any(s in text.lower() for s in _OUT_OF_SEARCHES)
    after = retry_after_seconds(retry_after)
    return HttpError(f"SerpApi returned HTTP {status}" + (f": {text}" if text else ""), status=status,
                     retryable=retryable, retry_after_s=after)


class OfficialClientTransport:
    """The official client, ``serpapi.Client(...).search(params)``, one client per thread (a
    requests session is not guaranteed thread-safe). The key is passed per call, not stored in it."""

    def __init__(self, base_url: str = DEFAULT_BASE_URL, settings: HttpSettings | None = None) -> None:
        import serpapi  # the official package; fail at construction when it is missing

        self._serpapi = serpapi
        self.base_url = check_http_url(base_url, "SerpApi base_url").rstrip("/")
        self.settings = settings or HttpSettings()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"OfficialClientTransport({redact(self.base_url)})"

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._serpapi.Client(timeout=(self.settings.connect_timeout_s, self.settings.read_timeout_s))
            client.BASE_DOMAIN = self.base_url  # instance attribute shadows the class default
            client.session.headers["User-Agent"] = self.settings.user_agent
            self._local.client = client
        return client

    def search(self, params: Mapping[str, str], api_key: Secret) -> Any:
        serpapi = self._serpapi
        try:
            result = self._client().search({**params, "api_key": api_key.reveal()})
        except serpapi.HTTPConnectionError as exc:  # subclass of HTTPError: check first
            raise HttpError(f"SerpApi connection failed ({type(exc.__context__ or exc).__name__})",
                            retryable=True) from None
        except serpapi.HTTPError as exc:
            response = getattr(exc, "response", None)
            retry_after = response.headers.get("Retry-After") if response is not None else None
            message = exc.error or (redacted_excerpt(response.text, 300) if response is not None else None)
            raise _status_error(exc.status_code, message, retry_after) from None
        except serpapi.TimeoutError:
            raise HttpError(f"SerpApi request timed out (connect {self.settings.connect_timeout_s}s / "
                            f"read {self.settings.read_timeout_s}s)", retryable=True) from None
        except Exception as exc:  # requests' own errors (chunked encoding, ...): message may hold the URL
            raise HttpError(f"SerpApi request failed ({type(exc).__name__}: {redact(exc)})") from None
        if isinstance(result, str):  # the client returns raw text when the body is not JSON
            raise HttpError(f"SerpApi returned malformed JSON ({len(result)} characters, starts {redacted_excerpt(result, 60)!r})")
        return result.as_dict() if hasattr(result, "as_dict") else result


class HttpxTransport:
    """SerpApi's wire format over our httpx fetcher: ``GET {base_url}/search.json`` with the
    parameters and ``api_key`` in the query string (SerpApi accepts no header auth)."""

    def __init__(self, fetcher: HttpFetcher, base_url: str = DEFAULT_BASE_URL, max_bytes: int = 20_000_000) -> None:
        self.fetcher = fetcher
        self.base_url = check_http_url(base_url, "SerpApi base_url").rstrip("/")
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"HttpxTransport({redact(self.base_url)})"

    def search(self, params: Mapping[str, str], api_key: Secret) -> Any:
        what = f"SerpApi {params.get('engine', '?')} search"
        try:
            fetched = self.fetcher.send("GET", f"{self.base_url}/search.json", what=what,
                                        params={**params, "api_key": api_key.reveal()}, max_bytes=self.max_bytes)
        except HttpError as exc:
            if exc.status is None:
                raise
            try:
                message = json.loads(exc.body).get("error")
            except (ValueError, AttributeError):
                message = redacted_excerpt(exc.body, 300)
            error = _status_error(exc.status, message)
            error.retry_after_s = exc.retry_after_s
            raise error from None
        return fetched.json(what)
