"""SearxngTextSearch against a loopback server speaking SearXNG's JSON API."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("tenacity")

from loopback import LoopbackServer, Reply, Request, chat_reply  # noqa: E402

from mmsearch_gym.search import QueryImage, SearchResults  # noqa: E402
from mmsearch_gym.search.http import HttpFetcher, HttpSettings, RetryPolicy  # noqa: E402
from mmsearch_gym.search.reader import JinaReader  # noqa: E402
from mmsearch_gym.search.searxng import SearxngTextSearch  # noqa: E402
from mmsearch_gym.search.summarizer import ChatSummarizer  # noqa: E402

FAST = HttpSettings(connect_timeout_s=1.0, read_timeout_s=0.4, total_timeout_s=5.0, trust_env=False,
                    retry=RetryPolicy(max_attempts=3, initial_wait_s=0.01, max_wait_s=0.05, jitter_s=0.01))


@pytest.fixture()
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def searx_json(server: LoopbackServer, n: int = 4) -> dict:
    results = [{"url": server.url(f"/pages/{i}"), "title": f"Result {i}", "content": f"content {i}",
                "engine": "duckduckgo"} for i in range(1, n + 1)]
    results.append(dict(results[0], title="Duplicate of 1"))  # same URL from another engine
    return {"query": "q", "number_of_results": n, "results": results, "unresponsive_engines": []}


def backend(server: LoopbackServer, **kwargs: object) -> SearxngTextSearch:
    return SearxngTextSearch(server.base_url, settings=FAST, **kwargs)  # type: ignore[arg-type]


def test_snippets_mode(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=searx_json(server)))
    searx = backend(server, engines=["wikipedia", "duckduckgo"], language="en", safesearch=1)
    results = searx.text_search(" Red Banner Society ", 3)
    assert results.error is None
    assert [(i.title, i.snippet) for i in results.items] == [("Result 1", "content 1"), ("Result 2", "content 2"),
                                                             ("Result 3", "content 3")]
    request = server.requests[0]
    assert request.param("q") == "Red Banner Society" and request.param("format") == "json"
    assert request.param("engines") == "duckduckgo,wikipedia" and request.param("language") == "en"
    assert request.param("safesearch") == "1"
    assert searx.usage() == {"billable_calls": {"searxng": 1}, "estimated_cost_usd": 0.0,
                             "price_per_1k_usd": {"searxng": 0.0}}
    assert searx.image_search(QueryImage(np.zeros((4, 4, 3), np.uint8)), 3).error
    every = searx.text_search("q", 10)  # the duplicate URL (another engine's copy of result 1) is dropped
    assert [i.title for i in every.items] == ["Result 1", "Result 2", "Result 3", "Result 4"]


def test_pipeline_skips_failed_pages_and_dedupes(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=searx_json(server)))
    server.route(f"/reader/{server.url('/pages/1')}", Reply(body="Page one says 1887."))
    server.route(f"/reader/{server.url('/pages/2')}", Reply(502, "bad gateway"))
    server.route(f"/reader/{server.url('/pages/3')}", Reply(body="Page three says 1888."))

    def chat(request: Request) -> Reply:
        text = request.json()["messages"][1]["content"]
        return Reply(body=chat_reply(re.search(r"says (\d+)", text).group(0) + "."))  # type: ignore[union-attr]

    server.route("/v1/chat/completions", chat)
    fetcher = HttpFetcher(FAST)
    searx = backend(server, reader=JinaReader(server.url("/reader"), fetcher=fetcher),
                    summarizer=ChatSummarizer("local-model", server.url("/v1"), fetcher=fetcher))
    results = searx.text_search("founded", 2)
    assert results.error is None
    assert [(i.title, i.snippet) for i in results.items] == [("Result 1", "says 1887."), ("Result 3", "says 1888.")]
    assert server.hits(f"/reader/{server.url('/pages/2')}") == 3  # 502 retried, then skipped
    assert searx.usage()["billable_calls"] == {"jina_reader": 5, "searxng": 1, "summarizer/local-model": 2}
    assert "reader=jina(" in searx.backend_id and "model=local-model" in searx.backend_id


def test_json_format_disabled_gives_a_hint(server: LoopbackServer) -> None:
    server.route("/search", Reply(403, "<html>Forbidden</html>", content_type="text/html"))
    results = backend(server).text_search("q", 3)
    assert "HTTP 403" in (results.error or "") and "settings.yml" in (results.error or "")
    assert server.hits("/search") == 1


def test_malformed_json(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=b"<html>oops</html>", content_type="application/json"))
    assert "malformed JSON" in (backend(server).text_search("q", 3).error or "")
    server.route("/search", Reply(body={"results": "not a list"}))
    assert "'results' list" in (backend(server).text_search("q", 3).error or "")


def test_429_then_success(server: LoopbackServer) -> None:
    server.route("/search", Reply(429, "slow down"), Reply(body=searx_json(server, 1)))
    searx = backend(server)
    assert [i.title for i in searx.text_search("q", 3).items] == ["Result 1"]
    assert searx.usage()["billable_calls"] == {"searxng": 2}


def test_slow_instance_times_out(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=searx_json(server), delay_s=1.2))
    settings = HttpSettings(read_timeout_s=0.3, trust_env=False,
                            retry=RetryPolicy(max_attempts=2, initial_wait_s=0.01, max_wait_s=0.02, jitter_s=0))
    results = SearxngTextSearch(server.base_url, settings=settings).text_search("q", 3)
    assert "timed out" in (results.error or "") and "2 attempts" in (results.error or "")


def test_oversized_response_is_refused(server: LoopbackServer) -> None:
    server.route("/search", Reply(body={"results": [], "padding": "x" * 50_000}, declare_length=False))
    results = backend(server, max_bytes=10_000).text_search("q", 3)
    assert "exceeds the limit" in (results.error or "")


def test_empty_results(server: LoopbackServer) -> None:
    server.route("/search", Reply(body={"results": [], "unresponsive_engines": [["google", "timeout"]]}),
                 Reply(body={"results": [], "unresponsive_engines": []}))
    searx = backend(server)
    assert "google (timeout)" in (searx.text_search("q", 3).error or "")
    assert searx.text_search("q", 3) == SearchResults("text")
    assert "top_k must be an int >= 1, got 0" in (searx.text_search("q", 0).error or "")
    assert searx.text_search("  ", 3).error


def test_backend_id_and_validation() -> None:
    a = SearxngTextSearch("http://admin:hunter2secret@searx.local:8888/", engines="wikipedia,duckduckgo")
    assert a.backend_id == ("searxng-text:base=http://***@searx.local:8888,engines=duckduckgo+wikipedia,"
                            "safesearch=0,pages=snippets")
    assert "hunter2secret" not in repr(a)
    assert SearxngTextSearch("http://s", engines=["duckduckgo", "wikipedia"]).backend_id != \
        SearxngTextSearch("http://s", engines=["wikipedia"]).backend_id
    with pytest.raises(ValueError, match="'searx.local'"):
        SearxngTextSearch("searx.local")
    with pytest.raises(ValueError, match="safesearch"):
        SearxngTextSearch("http://s", safesearch=3)
    with pytest.raises(ValueError, match="time_range"):
        SearxngTextSearch("http://s", time_range="decade")
    with pytest.raises(ValueError, match="both reader= and summarizer="):
        SearxngTextSearch("http://s", summarizer=ChatSummarizer("m", "http://s/v1"))
