"""The retry policy every HTTP client of the package shares: which failures are transient, how long to
wait, and the one rule for a server's ``Retry-After``.

Why one policy: the search backends, the summarizer, the eval agent and the judge once ran three
retry loops that read ``Retry-After`` differently (one ignored HTTP dates, one let it shorten the
back-off). Now every client waits ``max(back-off, Retry-After)``, capped at ``max_wait_s``, and
retries the same statuses that OpenAI's own client does (408, 409, 425, 429 and 5xx), timeouts and
dropped connections; everything else fails at once. Errors are `HttpError`s whose message is redacted
on construction, so they are safe to show, log or store.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import tenacity

from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.net.secrets import redact

__all__ = [
    "HttpError", "RETRYABLE_STATUSES", "RetryPolicy", "call_with_retries", "is_retryable_status",
    "retry_after_seconds",
]

log = logging.getLogger("mmsearch_gym.net")
T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
"""Statuses worth retrying besides every 5xx: timeouts, conflicts, "too early" and rate limits."""


class HttpError(Exception):
    """A failed HTTP exchange. The message is redacted on construction, so it is safe to show,
    log or store. `retryable` marks transient failures (429, 5xx, timeouts, dropped connections);
    `attempts` is how many requests were sent before giving up."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after_s: float | None = None, body: bytes = b"", attempts: int = 1) -> None:
        super().__init__(redact(message))
        self.status = status
        self.retryable = retryable
        self.retry_after_s = retry_after_s
        self.body = body
        self.attempts = attempts

    @property
    def message(self) -> str:
        return str(self)


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header value (delta-seconds or an HTTP date); None when
    absent or unreadable. The only Retry-After parser of the package."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None  # "nan" and "inf" are unreadable
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


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
        require_int("RetryPolicy.max_attempts", self.max_attempts, low=1)
        for name in ("initial_wait_s", "max_wait_s", "jitter_s"):
            require_number(f"RetryPolicy.{name}", getattr(self, name), low=0.0)

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

    When retries are exhausted the last error is re-raised with the attempt count in its message
    ("... (gave up after 3 attempts)") and in its `attempts`."""

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.wait_s(state.attempt_number, getattr(exc, "retry_after_s", None))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s: attempt %d/%d failed (%s); retrying", what, state.attempt_number,
                    policy.max_attempts, redact(exc))

    sent = 0

    def counted() -> T:
        nonlocal sent
        sent += 1
        return fn()

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(policy.max_attempts), wait=wait,
                                 retry=tenacity.retry_if_exception(_is_retryable), reraise=True,
                                 before_sleep=before_sleep)
    try:
        return retrying(counted)
    except HttpError as exc:
        if exc.retryable and sent > 1:
            raise HttpError(f"{exc} (gave up after {sent} attempts)", status=exc.status, retryable=False,
                            retry_after_s=exc.retry_after_s, body=exc.body, attempts=sent) from None
        exc.attempts = sent
        raise
