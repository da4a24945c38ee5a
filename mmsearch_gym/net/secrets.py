"""Secrets in memory only, and redaction of every text that may leave the process.

Why one place: the search backends, the page readers, the summarizer, the eval agent and the judge all
send credentials (query-string keys, ``Authorization`` headers, ``user:key@`` in endpoint URLs), and a
server may echo any of them back in an error body. Whatever a caller shows, logs or stores (error
results, run records, ``judged.json``, caches) goes through `redact`, which removes every registered
secret value (raw, URL-encoded, and the Basic-auth form of a URL's user info) and anything that looks
like a credential (``api_key=...``, ``Bearer ...``, ``user:pw@``).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

__all__ = [
    "REDACTED", "RedactingFilter", "Secret", "install_log_redaction", "public_url", "redact", "register_secret",
    "redacted_excerpt", "register_url_credentials", "secret_from",
]

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


def register_url_credentials(url: str) -> None:
    """Register the user info of `url` (``scheme://user:key@host``) as secrets: the password raw and
    percent-decoded, and the ``user:key`` pair in the base64 form that HTTP Basic auth sends (a server
    echoing the ``Authorization`` header shows that form)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    user, password = parts.username, parts.password
    for value in (password, unquote(password or "")):
        register_secret(value or "")
    if user is not None or password is not None:
        pair = f"{unquote(user or '')}:{unquote(password or '')}"
        register_secret(base64.b64encode(pair.encode("utf-8")).decode("ascii"))


def public_url(url: str) -> str:
    """`url` without user info, query or fragment (which may hold credentials): the form that cards,
    reprs and error messages show."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
    except ValueError:
        return redact(url)
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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


def redacted_excerpt(value: object, limit: int = 300) -> str:
    """The start of `value` (text or bytes) for an error message: redacted *before* it is cut, so a
    secret that straddles the cut cannot survive as an unrecognisable half."""
    text = bytes(value).decode("utf-8", errors="replace") if isinstance(value, (bytes, bytearray)) else str(value)
    text = redact(text)
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


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


_LOGGERS_TO_REDACT = ("mmsearch_gym.search", "mmsearch_gym.net", "httpx", "httpcore", "httpcore.connection",
                      "httpcore.http11", "httpcore.proxy", "urllib3", "urllib3.connectionpool",
                      "urllib3.util.retry", "requests", "tenacity", "trafilatura")
_FILTER = RedactingFilter()


def install_log_redaction() -> None:
    """Attach the redacting filter to the loggers that see request URLs (idempotent).

    Logger filters apply only to records created by that exact logger, hence the explicit list."""
    for name in _LOGGERS_TO_REDACT:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


install_log_redaction()
