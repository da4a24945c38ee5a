"""Secrets and redaction (`mmsearch_gym.net.secrets`): what every HTTP client relies on to keep keys
out of errors, logs, run records and judged.json."""

from __future__ import annotations

import base64
import pickle
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsearch_gym.net.secrets import (REDACTED, Secret, public_url, redact, register_secret,
                                      register_url_credentials)

# Generated secrets carry a prefix no ordinary text has: registered values stay registered for the
# whole test process, and a generated "engine" would otherwise redact other tests' words.
KEYS = st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters="*"), min_size=4,
               max_size=40).map(lambda s: "sk-hyp-" + s)
TEXT = st.text(max_size=40)


@given(KEYS, TEXT, TEXT)
def test_a_registered_secret_never_survives_in_any_encoding(secret: str, before: str, after: str) -> None:
    register_secret(secret)
    for form in (secret, quote(secret, safe=""), quote_plus(secret)):
        cleaned = redact(before + form + after)
        assert form not in cleaned and REDACTED in cleaned


@given(st.text(min_size=1, max_size=20), KEYS, st.sampled_from(["", "/v1", "/v1/chat/completions"]),
       st.sampled_from(["", "?token=abc", "?api-version=1#frag"]))
def test_url_credentials_are_registered_and_never_public(user: str, password: str, path: str, query: str) -> None:
    url = f"http://{quote(user, safe='')}:{quote(password, safe='')}@host.example:8443{path}{query}"
    register_url_credentials(url)
    assert public_url(url) == f"http://host.example:8443{path}"
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    for text in (url, f"echo: Authorization: Basic {basic}", f"'{password}' raw"):
        cleaned = redact(text)
        assert password not in cleaned and quote(password, safe="") not in cleaned and basic not in cleaned


def test_secret_wrapper_never_shows_or_pickles_its_value() -> None:
    secret = Secret("  sk-wrapper-value-123  ")
    assert secret.reveal() == "sk-wrapper-value-123"
    assert "sk-wrapper" not in repr(secret) + str(secret)
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(secret)
    with pytest.raises(ValueError, match="non-empty"):
        Secret("   ")
    assert redact("the key is sk-wrapper-value-123") == "the key is ***"


def test_short_values_are_not_registered() -> None:
    register_secret("abc")  # would redact ordinary words
    assert redact("abc abcd") == "abc abcd"


LONG_KEY = "sk-straddle-0123456789abcdefghijklmnopqrstuv"


@given(st.integers(min_value=0, max_value=120), st.integers(min_value=10, max_value=100), TEXT)
def test_an_excerpt_is_redacted_before_it_is_cut(padding: int, limit: int, after: str) -> None:
    from mmsearch_gym.net.secrets import redacted_excerpt

    register_secret(LONG_KEY)
    for value in ("x" * padding + LONG_KEY + after, ("x" * padding + LONG_KEY + after).encode()):
        shown = redacted_excerpt(value, limit)
        assert len(shown) <= limit
        assert not any(LONG_KEY[i:i + 8] in shown for i in range(len(LONG_KEY) - 7)), shown


def test_an_http_error_body_cut_across_the_key_leaks_no_half() -> None:
    pytest.importorskip("httpx")
    from loopback import LoopbackServer, Reply

    from mmsearch_gym.net.chat import ChatClient
    from mmsearch_gym.net.retry import HttpError, RetryPolicy

    with LoopbackServer() as server:
        server.route("/v1/chat/completions", Reply(500, "e" * 260 + f" key in use: {LONG_KEY} " + "e" * 50))
        client = ChatClient(server.url("/v1"), api_key=LONG_KEY, trust_env=False, retry=RetryPolicy(max_attempts=1))
        with pytest.raises(HttpError) as caught:
            client.complete({"model": "m", "messages": []})
    message = str(caught.value)
    assert "HTTP 500" in message and "***" in message
    assert not any(LONG_KEY[i:i + 8] in message for i in range(len(LONG_KEY) - 7)), message
