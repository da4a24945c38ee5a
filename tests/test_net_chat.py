"""The one OpenAI-compatible chat client: the eval agent, the judge and the summarizer all retry,
honour Retry-After and redact secrets the same way (checked against a loopback server)."""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("tenacity")

from loopback import LoopbackServer, Reply, Request, chat_reply  # noqa: E402

from mmsearch_gym.agents.base import AgentError  # noqa: E402
from mmsearch_gym.agents.openai_compat import OpenAICompatibleAgent  # noqa: E402
from mmsearch_gym.benchmarks.judge import JudgeError, LLMJudge  # noqa: E402
from mmsearch_gym.net.chat import ChatClient, chat_endpoint, message_text  # noqa: E402
from mmsearch_gym.net.fetch import HttpFetcher, HttpSettings  # noqa: E402
from mmsearch_gym.net.retry import HttpError, RetryPolicy  # noqa: E402
from mmsearch_gym.search.summarizer import ChatSummarizer  # noqa: E402

CHAT = "/v1/chat/completions"
VERDICT = json.dumps({"verdict": "yes", "reason": "Same answer."})
KEY = "sk-net/TEST+key=99"
FAST = RetryPolicy(max_attempts=3, initial_wait_s=0.01, max_wait_s=0.05, jitter_s=0.0)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with LoopbackServer() as loopback:
        yield loopback


def _obs() -> dict[str, Any]:
    return {"images": (np.zeros((4, 4, 3), np.uint8),),
            "messages": ({"role": "user", "content": [{"type": "text", "text": "Which city?"}]},)}


def _clients(base_url: str, **key: Any) -> dict[str, Callable[[], str]]:
    """One call of each of the three users of the chat client, with the same retry settings."""
    agent = OpenAICompatibleAgent(base_url, "m", max_retries=2, backoff_initial=0.01, backoff_max=0.05, stop=None,
                                  **key)
    judge = LLMJudge("m", base_url=base_url, max_retries=2, backoff=0.01, max_backoff=0.05, trust_env=False,
                     include_image=False, **key)
    summarizer = ChatSummarizer("m", base_url, fetcher=HttpFetcher(HttpSettings(retry=FAST, trust_env=False)),
                                **key)
    return {"agent": lambda: agent.act(_obs()),
            "judge": lambda: judge.judge("Which city?", "Paris", "Paris").reason,
            "summarizer": lambda: summarizer.summarize("city", "Paris is the capital.", url="http://x/")}


@pytest.mark.parametrize("header", ["delta", "http-date"])
def test_all_three_clients_honour_retry_after_by_one_rule(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch,
                                                          header: str) -> None:
    seen: list[float | None] = []
    original = RetryPolicy.wait_s

    def recording(self: RetryPolicy, attempt: int, retry_after_s: float | None = None) -> float:
        seen.append(retry_after_s)
        return original(self, attempt, retry_after_s)

    monkeypatch.setattr(RetryPolicy, "wait_s", recording)
    value = "120" if header == "delta" else email.utils.formatdate(time.time() + 120, usegmt=True)
    for name, call in _clients(server.url("/v1")).items():
        server.route(CHAT, Reply(429, {"error": "slow down"}, headers={"Retry-After": value}),
                     Reply(503, "busy"), Reply(body=chat_reply(VERDICT)))
        seen.clear()
        before = server.hits(CHAT)
        assert call(), name
        assert server.hits(CHAT) - before == 3, name  # 429 and 503 retried, then the answer
        assert len(seen) == 2 and 100 < (seen[0] or 0) <= 120 and seen[1] is None, (name, seen)
        assert original(FAST, 1, seen[0]) == FAST.max_wait_s  # the wait honours it, capped


def _key_forms(user: str) -> list[str]:
    return [KEY, quote(KEY, safe=""), quote_plus(KEY), base64.b64encode(f"{user}:{KEY}".encode()).decode()]


def _echo(request: Request) -> Reply:
    return Reply(500, {"error": "boom", "authorization": request.headers.get("Authorization"),
                       "url": f"http://judge:{quote(KEY, safe='')}@host{request.path}"})


@pytest.mark.parametrize("credential", ["api_key", "userinfo"])
def test_all_three_clients_redact_an_echoed_key(server: LoopbackServer, credential: str) -> None:
    server.route(CHAT, _echo)
    if credential == "api_key":
        base_url, key = server.url("/v1"), {"api_key": KEY}
    else:
        base_url, key = server.url("/v1").replace("http://", f"http://judge:{quote(KEY, safe='')}@"), {}
    for name, call in _clients(base_url, **key).items():
        with pytest.raises((AgentError, JudgeError, HttpError)) as caught:
            call()
        message = str(caught.value)
        assert "HTTP 500" in message and "gave up after 3 attempts" in message and "***" in message, name
        for form in _key_forms("judge"):
            assert form not in message, (name, form)
    assert all(r.headers.get("Authorization") for r in server.requests)  # the key was sent, only never shown


def test_chat_client_basics(server: LoopbackServer) -> None:
    assert chat_endpoint("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_endpoint("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    assert message_text([{"type": "text", "text": "a"}, {"type": "image_url"}, {"text": "b"}]) == "ab"
    assert message_text(None) is None and message_text("x") == "x"

    client = ChatClient(server.url("/v1").replace("http://", f"http://u:{quote(KEY, safe='')}@") + "?token=t",
                        retry=FAST, trust_env=False)
    assert client.endpoint == server.url(CHAT) and KEY not in repr(client) and "u:" not in repr(client)
    server.route(CHAT, Reply(body=[1, 2]))
    with pytest.raises(HttpError, match="not an object"):
        client.complete({"model": "m", "messages": []})
    server.route(CHAT, Reply(400, {"error": "unknown model"}))
    with pytest.raises(HttpError, match="HTTP 400.*unknown model"):
        client.complete({"model": "m", "messages": []})
    assert client.requests == 2  # a 400 is not retried
    with pytest.raises(ValueError, match="base_url must be an absolute http"):
        ChatClient("ftp://x")
