"""The one retry policy and the one Retry-After rule of `mmsearch_gym.net`."""

from __future__ import annotations

import email.utils
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("tenacity")

from mmsearch_gym.net.retry import (HttpError, RetryPolicy, call_with_retries, is_retryable_status,  # noqa: E402
                                    retry_after_seconds)


@given(st.integers(min_value=0, max_value=10**9))
def test_delta_seconds_are_read_as_they_are(seconds: int) -> None:
    assert retry_after_seconds(str(seconds)) == seconds
    assert retry_after_seconds(f"  {seconds}\t") == seconds


@given(st.text(max_size=60))
def test_any_header_value_is_a_wait_or_none_never_an_error(value: str) -> None:
    wait = retry_after_seconds(value)
    assert wait is None or wait >= 0.0


def test_http_dates_and_unreadable_values() -> None:
    future = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < (retry_after_seconds(future) or 0) <= 121
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    for unreadable in (None, "", "soon", "nan", "inf", "-inf", "Wed, 99 Foo 2015"):
        assert retry_after_seconds(unreadable) is None
    assert retry_after_seconds("-5") == 0.0


@given(attempt=st.integers(min_value=1, max_value=30),
       retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=1e6)))
def test_wait_is_backoff_raised_to_retry_after_and_capped(attempt: int, retry_after: float | None) -> None:
    policy = RetryPolicy(initial_wait_s=0.5, max_wait_s=10.0, jitter_s=0.0)
    wait = policy.wait_s(attempt, retry_after)
    backoff = min(10.0, 0.5 * 2 ** (attempt - 1))
    assert wait == max(backoff, min(retry_after or 0.0, 10.0))


def test_retryable_statuses_are_those_of_openais_client() -> None:
    assert [s for s in (400, 401, 403, 404, 408, 409, 422, 425, 429, 500, 501, 503, 599) if is_retryable_status(s)] \
        == [408, 409, 425, 429, 500, 501, 503, 599]


def test_call_with_retries_counts_attempts_and_stops_at_a_final_error() -> None:
    policy = RetryPolicy(max_attempts=5, initial_wait_s=0.0, max_wait_s=0.0, jitter_s=0.0)
    errors = iter([HttpError("busy", status=503, retryable=True), HttpError("bad", status=400)])

    def fail() -> None:
        raise next(errors)

    with pytest.raises(HttpError) as caught:
        call_with_retries(fail, policy, what="test")
    assert str(caught.value) == "bad" and caught.value.attempts == 2 and caught.value.status == 400

    with pytest.raises(HttpError, match=r"busy \(gave up after 3 attempts\)") as caught:
        call_with_retries(lambda: (_ for _ in ()).throw(HttpError("busy", status=503, retryable=True)),
                          RetryPolicy(max_attempts=3, initial_wait_s=0.0, max_wait_s=0.0, jitter_s=0.0), what="t")
    assert caught.value.attempts == 3 and not caught.value.retryable


def test_policy_arguments_are_checked() -> None:
    for bad in ({"max_attempts": 0}, {"max_attempts": True}, {"initial_wait_s": -1.0},
                {"max_wait_s": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            RetryPolicy(**bad)  # type: ignore[arg-type]
