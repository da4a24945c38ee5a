"""`ChatClient`: the one OpenAI-compatible ``POST /chat/completions`` client of the package.

Why one client: the eval agent, the LLM judge and the page summarizer all talk to chat endpoints
(hosted APIs, vLLM, SGLang, `transformers serve`, llama.cpp...). Each once ran its own retry loop;
they honoured ``Retry-After`` differently and the judge wrote API keys into ``judged.json``. Through
this client all three:
- send through the bounded `HttpFetcher` (timeouts, a deadline, a body-size cap, a concurrency cap);
- retry transient failures per one `RetryPolicy` (429/5xx/timeouts, waiting ``max(back-off,
  Retry-After)``); other statuses fail at once;
- hold the key as a `Secret`, register ``user:key@`` credentials of the endpoint URL, and show only
  the public endpoint (no user info, no query) — every error is an `HttpError`, redacted.
What a reply means (the verdict, the summary, the agent's action) stays with the caller.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.net.fetch import HttpFetcher, HttpSettings, check_http_url
from mmsearch_gym.net.retry import HttpError, RetryPolicy
from mmsearch_gym.net.secrets import Secret, public_url, redacted_excerpt, register_url_credentials, secret_from

__all__ = ["CHAT_PATH", "ChatClient", "chat_endpoint", "message_text"]

CHAT_PATH = "/chat/completions"
DEFAULT_MAX_BYTES = 20_000_000  # a chat completion is small; this only stops a runaway server


def chat_endpoint(base_url: str) -> str:
    """``{base_url}/chat/completions`` (a query string, e.g. Azure's ``api-version``, stays at the end);
    a URL whose path already ends so is kept as it is."""
    parts = urlsplit(base_url.strip())
    path = parts.path.rstrip("/")
    if not path.endswith(CHAT_PATH):
        path += CHAT_PATH
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def message_text(content: Any) -> str | None:
    """The text of a chat message's ``content``: a string as it is, a list of content parts joined
    (their ``text`` fields), anything else None."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return None


class ChatClient:
    """POSTs chat-completion bodies to ``{base_url}/chat/completions`` and returns the reply's JSON.

    base_url: the API root with its version, e.g. "http://127.0.0.1:8000/v1" (a URL ending in
        "/chat/completions" is used as it is). ``user:key@`` in it is sent as HTTP Basic auth (httpx's
        rule) and redacted everywhere.
    api_key: sent as ``Authorization: Bearer``; default: the environment variable `api_key_env`
        (read now); with neither, no header (local servers need none).
    what: how errors name this client (default ``POST <public endpoint>``).
    timeout: seconds for connecting, for each read, and for the whole response.
    retry: the retry policy (default: the fetcher's). concurrency: requests in flight at most.
    max_bytes: the largest reply accepted (default: the fetcher's limit, or 20 MB).
    fetcher: share one with other clients (its pool, limits and semaphore); `timeout`,
        `concurrency` and `trust_env` then come from it.
    """

    def __init__(self, base_url: str, *, api_key: str | Secret | None = None,
                 api_key_env: str | None = "OPENAI_API_KEY", what: str | None = None, timeout: float = 60.0,
                 retry: RetryPolicy | None = None, concurrency: int = 8, trust_env: bool = True,
                 max_bytes: int | None = None, fetcher: HttpFetcher | None = None) -> None:
        if isinstance(base_url, str):
            register_url_credentials(base_url)  # before any message can quote it
        self._url = chat_endpoint(check_http_url(base_url, "base_url"))
        self.endpoint = public_url(self._url)
        """The endpoint as shown in errors and cards: no user info, query or fragment."""
        self._api_key = secret_from(api_key, api_key_env)
        self.what = what or f"POST {self.endpoint}"
        if max_bytes is None:
            max_bytes = fetcher.settings.max_bytes if fetcher is not None else DEFAULT_MAX_BYTES
        self.max_bytes = require_int("max_bytes", max_bytes, low=1)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError(f"retry must be a RetryPolicy, got {retry!r}")
        self._owns_fetcher = fetcher is None
        if fetcher is None:
            seconds = require_number("timeout", timeout, low=0.0, low_inclusive=False)
            fetcher = HttpFetcher(HttpSettings(
                connect_timeout_s=seconds, read_timeout_s=seconds, total_timeout_s=seconds,
                max_concurrency=require_int("concurrency", concurrency, low=1), max_bytes=self.max_bytes,
                retry=retry or RetryPolicy(), trust_env=bool(trust_env)))
        self.fetcher = fetcher
        self.retry = retry or fetcher.settings.retry
        self._lock = threading.Lock()
        self._requests = 0

    def __repr__(self) -> str:
        return f"ChatClient({self.endpoint!r})"

    @property
    def requests(self) -> int:
        """Requests sent so far, retries included."""
        with self._lock:
            return self._requests

    @property
    def has_key(self) -> bool:
        return self._api_key is not None

    def complete(self, body: Mapping[str, Any], *, on_attempt: Callable[[], None] | None = None
                 ) -> dict[str, Any]:
        """The reply's JSON object for one request body. Retries per the policy; `on_attempt` runs
        before each request sent (billing meters count attempts). Raises `HttpError` (redacted)."""
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.reveal()}"

        def attempt() -> None:
            with self._lock:
                self._requests += 1
            if on_attempt is not None:
                on_attempt()

        fetched = self.fetcher.request("POST", self._url, what=self.what, json_body=dict(body), headers=headers,
                                       max_bytes=self.max_bytes, on_attempt=attempt, retry=self.retry)
        payload = fetched.json(self.what)
        if not isinstance(payload, dict):
            raise HttpError(f"{self.what} returned JSON that is not an object: {redacted_excerpt(payload, 300)}")
        return payload

    def close(self) -> None:
        """Close the connection pool if this client made it (a shared fetcher stays open)."""
        if self._owns_fetcher:
            self.fetcher.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
