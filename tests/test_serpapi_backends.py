"""SerpApi image/text backends, page readers and the summarizer against loopback servers only."""

from __future__ import annotations

import logging
import pickle
import re
import socket
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("httpx")
pytest.importorskip("serpapi")
pytest.importorskip("tenacity")

from loopback import LoopbackServer, Reply, Request, chat_reply, jpeg_bytes, webp_bytes  # noqa: E402

from mmsearch_gym.search import QueryImage, SearchResults  # noqa: E402
from mmsearch_gym.search.costs import UsageMeter  # noqa: E402
from mmsearch_gym.search.http import HttpFetcher, HttpSettings, RetryPolicy, Secret, redact  # noqa: E402
from mmsearch_gym.search.reader import JinaReader, LocalExtractor  # noqa: E402
from mmsearch_gym.search.serpapi import CombinedSearch, SerpApiImageSearch, SerpApiTextSearch  # noqa: E402
from mmsearch_gym.search.summarizer import ChatSummarizer, first_sentences  # noqa: E402

KEY = "sk-loopback-SECRET-9f8e7d6c5b4a"
FAST = HttpSettings(connect_timeout_s=1.0, read_timeout_s=0.4, total_timeout_s=5.0, trust_env=False,
                    retry=RetryPolicy(max_attempts=3, initial_wait_s=0.01, max_wait_s=0.05, jitter_s=0.01))
TRANSPORTS = ["official", "httpx"]
PIXELS = np.full((8, 8, 3), 120, np.uint8)
JPEG = jpeg_bytes()


@pytest.fixture()
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def search_path(transport: str) -> str:
    """The official client requests /search, the httpx transport /search.json (both valid at SerpApi)."""
    return "/search" if transport == "official" else "/search.json"


def lens_json(server: LoopbackServer) -> dict:
    return {"search_metadata": {"status": "Success"}, "visual_matches": [
        {"position": 1, "title": "Red Banner Society", "link": "https://example.org/rbs",
         "thumbnail": server.url("/thumbs/1.jpg")},
        {"position": 2, "title": "RBS flag", "link": "https://example.org/flag", "thumbnail": server.url("/thumbs/2.webp")},
        {"position": 3, "title": "Broken thumbnail", "link": "https://example.org/x",
         "thumbnail": server.url("/thumbs/missing.jpg")},
        {"position": 4, "title": "Fourth", "link": "https://example.org/4"},
    ]}


def image_backend(server: LoopbackServer, transport: str, **kwargs: object) -> SerpApiImageSearch:
    kwargs.setdefault("api_key", KEY)
    return SerpApiImageSearch(base_url=server.base_url, transport=transport, settings=FAST, **kwargs)  # type: ignore[arg-type]


def query_image() -> QueryImage:
    return QueryImage(PIXELS, url="https://images.example.org/emblem.png")


# --- image search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_image_search_success_with_thumbnails(server: LoopbackServer, transport: str) -> None:
    server.route(search_path(transport), Reply(body=lens_json(server)))
    server.route("/thumbs/1.jpg", Reply(body=JPEG, content_type="image/jpeg"))
    server.route("/thumbs/2.webp", Reply(body=webp_bytes(), content_type="image/webp"))
    backend = image_backend(server, transport, hl="en", country="us")

    results = backend.image_search(query_image(), top_k=3)

    assert results.error is None and results.kind == "image"
    assert [i.title for i in results.items] == ["Red Banner Society", "RBS flag", "Broken thumbnail"]
    assert [i.url for i in results.items] == ["https://example.org/rbs", "https://example.org/flag", "https://example.org/x"]
    assert all(i.snippet == "" for i in results.items)
    first, second, third = (i.thumbnail for i in results.items)
    assert first is not None and first.data == JPEG  # JPEG kept byte for byte
    assert second is not None and second.mime_type == "image/jpeg"  # WebP re-encoded
    assert third is None  # 404 thumbnail: item kept without it
    sent = [r for r in server.requests if r.path == search_path(transport)]
    assert len(sent) == 1
    assert sent[0].param("engine") == "google_lens" and sent[0].param("url") == query_image().url
    assert sent[0].param("hl") == "en" and sent[0].param("country") == "us" and sent[0].param("api_key") == KEY
    assert backend.usage() == {"billable_calls": {"serpapi/google_lens": 1}, "estimated_cost_usd": 0.015,
                               "price_per_1k_usd": {"serpapi/google_lens": 15.0}}


def test_image_search_top_k_and_no_results(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=lens_json(server)),
                 Reply(body={"error": "Google hasn't returned any results for this query."}))
    server.route("/thumbs/1.jpg", Reply(body=JPEG, content_type="image/jpeg"))
    backend = image_backend(server, "official")
    assert [i.title for i in backend.image_search(query_image(), 1).items] == ["Red Banner Society"]
    assert backend.image_search(query_image(), 5) == SearchResults("image")
    sent = len(server.requests)
    for bad in (0, -1, True, 2.0):  # one top_k rule for every backend: an int >= 1, else an error result
        assert f"top_k must be an int >= 1, got {bad!r}" in (backend.image_search(query_image(), bad).error or "")
    assert len(server.requests) == sent  # no request for a bad top_k
    assert server.hits("/search") == 2


def test_image_search_uses_uploader_once_per_image(server: LoopbackServer) -> None:
    server.route("/search", Reply(body={"visual_matches": []}))
    uploads: list[bytes] = []

    def uploader(png: bytes) -> str:
        uploads.append(png)
        return "https://bucket.example.org/q/1.png"

    backend = image_backend(server, "official", uploader=uploader)
    for _ in range(2):
        assert backend.image_search(QueryImage(PIXELS), 3) == SearchResults("image")
    assert len(uploads) == 1 and uploads[0].startswith(b"\x89PNG")
    assert [r.param("url") for r in server.requests] == ["https://bucket.example.org/q/1.png"] * 2


def test_image_search_without_url_or_uploader_is_a_config_error(server: LoopbackServer) -> None:
    results = image_backend(server, "official").image_search(QueryImage(PIXELS), 3)
    assert results.items == () and "uploader" in (results.error or "") and "QueryImage.url" in (results.error or "")
    assert server.requests == []


def test_failing_uploader_is_an_error_result(server: LoopbackServer) -> None:
    def uploader(png: bytes) -> str:
        raise OSError("bucket unreachable")

    results = image_backend(server, "official", uploader=uploader).image_search(QueryImage(PIXELS), 3)
    assert "image upload failed" in (results.error or "") and "bucket unreachable" in (results.error or "")


def test_missing_key(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = image_backend(server, "official", api_key=None)
    results = backend.image_search(query_image(), 3)
    assert "SERPAPI_API_KEY" in (results.error or "") and server.requests == []
    text = SerpApiTextSearch(base_url=server.base_url, settings=FAST)
    assert "SERPAPI_API_KEY" in (text.text_search("anything", 3).error or "")
    with pytest.raises(ValueError, match="SERPAPI_API_KEY"):
        SerpApiImageSearch(require_key=True)
    # a key exported after construction is picked up at call time
    server.route("/search", Reply(body={"visual_matches": []}))
    monkeypatch.setenv("SERPAPI_API_KEY", KEY)
    assert backend.image_search(query_image(), 3).error is None
    assert server.requests[-1].param("api_key") == KEY


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_429_then_success_counts_both_attempts(server: LoopbackServer, transport: str) -> None:
    server.route(search_path(transport), Reply(429, {"error": "Too many requests"}, headers={"Retry-After": "0"}),
                 Reply(body={"visual_matches": [{"title": "T", "link": "https://e.org/t"}]}))
    backend = image_backend(server, transport)
    results = backend.image_search(query_image(), 3)
    assert results.error is None and [i.title for i in results.items] == ["T"]
    assert backend.usage()["billable_calls"] == {"serpapi/google_lens": 2}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_500s_exhaust_retries(server: LoopbackServer, transport: str) -> None:
    server.route(search_path(transport), Reply(500, {"error": "Internal error"}))
    backend = image_backend(server, transport)
    results = backend.image_search(query_image(), 3)
    assert results.items == () and "HTTP 500" in (results.error or "") and "3 attempts" in (results.error or "")
    assert server.hits(search_path(transport)) == 3
    assert backend.usage()["billable_calls"] == {"serpapi/google_lens": 3}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_slow_response_times_out_then_errors(server: LoopbackServer, transport: str) -> None:
    server.route(search_path(transport), Reply(body={"visual_matches": []}, delay_s=1.2))
    settings = HttpSettings(connect_timeout_s=1.0, read_timeout_s=0.3, trust_env=False,
                            retry=RetryPolicy(max_attempts=2, initial_wait_s=0.01, max_wait_s=0.02, jitter_s=0))
    backend = SerpApiImageSearch(KEY, base_url=server.base_url, transport=transport, settings=settings)
    results = backend.image_search(query_image(), 3)
    assert results.items == () and "timed out" in (results.error or "")
    assert server.hits(search_path(transport)) == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_json_is_not_retried(server: LoopbackServer, transport: str) -> None:
    server.route(search_path(transport), Reply(body=b'{"visual_matches": [', content_type="application/json"))
    backend = image_backend(server, transport)
    results = backend.image_search(query_image(), 3)
    assert "malformed JSON" in (results.error or "")
    assert server.hits(search_path(transport)) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_errors_are_not_retried_and_keep_serpapi_message(server: LoopbackServer, transport: str) -> None:
    server.route(search_path(transport), Reply(401, {"error": "Invalid API key."}))
    results = image_backend(server, transport).image_search(query_image(), 3)
    assert results.error == "image search failed: SerpApi returned HTTP 401: Invalid API key."
    assert server.hits(search_path(transport)) == 1


def test_out_of_searches_429_is_not_retried(server: LoopbackServer) -> None:
    server.route("/search", Reply(429, {"error": "Your account has run out of searches."}))
    results = image_backend(server, "official").image_search(query_image(), 3)
    assert "run out of searches" in (results.error or "") and server.hits("/search") == 1


# --- text search ----------------------------------------------------------------------------------


def organic_json(server: LoopbackServer, n: int = 4) -> dict:
    return {"organic_results": [{"position": i, "title": f"Page {i}", "link": server.url(f"/pages/{i}"),
                                 "snippet": f"snippet {i}"} for i in range(1, n + 1)]}


def route_chat(server: LoopbackServer, fail_for: str | None = None) -> None:
    def handler(request: Request) -> Reply:
        user = request.json()["messages"][1]["content"]
        url = re.search(r"Page URL: (\S+)", user).group(1)  # type: ignore[union-attr]
        if fail_for and url.endswith(fail_for):
            return Reply(400, {"error": {"message": "context too long"}})
        return Reply(body=chat_reply(f"Summary of {url.rsplit('/', 1)[1]}. Two. Three. Four. Five. Six."))

    server.route("/v1/chat/completions", handler)


def text_backend(server: LoopbackServer, **kwargs: object) -> SerpApiTextSearch:
    fetcher = HttpFetcher(FAST)
    kwargs.setdefault("reader", JinaReader(server.url("/reader"), fetcher=fetcher))
    kwargs.setdefault("summarizer", ChatSummarizer("test-model", server.url("/v1"), fetcher=fetcher))
    return SerpApiTextSearch(KEY, base_url=server.base_url, settings=FAST, **kwargs)  # type: ignore[arg-type]


def test_text_search_reads_and_summarises_pages(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=organic_json(server)))
    long_page = "Founded in 1887. " + "x" * 40_000
    for i in range(1, 5):
        server.route(f"/reader/{server.url(f'/pages/{i}')}", Reply(body=long_page if i == 1 else f"Text of page {i}."))
    route_chat(server)
    backend = text_backend(server, hl="en", gl="us")

    results = backend.text_search("  Red Banner Society founded ", top_k=2)

    assert results.error is None
    assert [(i.title, i.url) for i in results.items] == [("Page 1", server.url("/pages/1")), ("Page 2", server.url("/pages/2"))]
    assert results.items[0].snippet == "Summary of 1. Two. Three. Four. Five."  # capped at five sentences
    search = [r for r in server.requests if r.path == "/search"][0]
    assert search.param("engine") == "google" and search.param("q") == "Red Banner Society founded"
    chat = [r for r in server.requests if r.path == "/v1/chat/completions"]
    first = next(r.json() for r in chat if "/pages/1" in r.json()["messages"][1]["content"])
    assert first["model"] == "test-model"
    page = re.search(r"<<<\n(.*)\n>>>", first["messages"][1]["content"], re.S).group(1)  # type: ignore[union-attr]
    assert len(page) == 30_000 and page.startswith("Founded in 1887.")
    assert "Red Banner Society founded" in first["messages"][1]["content"]
    assert server.hits(f"/reader/{server.url('/pages/3')}") == 0  # only as many pages as needed
    usage = backend.usage()
    assert usage["billable_calls"] == {"jina_reader": 2, "serpapi/google": 1, "summarizer/test-model": 2}
    assert usage["estimated_cost_usd"] == 0.015


def test_failed_pages_are_skipped_in_rank_order(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=organic_json(server, 5)))
    server.route(f"/reader/{server.url('/pages/1')}", Reply(500, "reader down"))
    for i in (2, 3, 4, 5):
        server.route(f"/reader/{server.url(f'/pages/{i}')}", Reply(body=f"Text of page {i}."))
    route_chat(server, fail_for="/pages/2")  # summarizer fails on page 2
    results = text_backend(server).text_search("q", top_k=2)
    assert results.error is None and [i.title for i in results.items] == ["Page 3", "Page 4"]
    assert server.hits(f"/reader/{server.url('/pages/5')}") == 0


def test_all_pages_failing_is_an_error_result(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=organic_json(server, 2)))
    results = text_backend(server).text_search("q", top_k=3)  # reader routes missing: 404 for both
    assert results.items == () and "none of the 2 result pages" in (results.error or "")


def test_text_search_snippets_without_summarizer(server: LoopbackServer) -> None:
    server.route("/search", Reply(body=organic_json(server)))
    backend = SerpApiTextSearch(KEY, base_url=server.base_url, settings=FAST)
    results = backend.text_search("q", top_k=3)
    assert [(i.title, i.snippet) for i in results.items] == [("Page 1", "snippet 1"), ("Page 2", "snippet 2"),
                                                             ("Page 3", "snippet 3")]
    assert "pages=snippets" in backend.backend_id
    with pytest.raises(ValueError, match="both reader= and summarizer="):
        SerpApiTextSearch(KEY, reader=JinaReader())


def test_local_extractor_and_oversized_pages(server: LoopbackServer) -> None:
    article = "<html><body><nav>menu</nav><article><p>" + "The society was founded in 1887. " * 20 + "</p></article></body></html>"
    big = "<html><body><p>" + "y" * 50_000 + "</p></body></html>"
    server.route("/search", Reply(body=organic_json(server, 4)))
    server.route("/pages/1", Reply(body=big, content_type="text/html"))  # declared too big: refused before reading
    server.route("/pages/2", Reply(body=big, content_type="text/html", declare_length=False))  # cut while streaming
    server.route("/pages/3", Reply(body=JPEG, content_type="image/jpeg"))  # not a page
    server.route("/pages/4", Reply(body=article, content_type="text/html; charset=utf-8"))
    route_chat(server)
    fetcher = HttpFetcher(FAST)
    reader = LocalExtractor(max_bytes=10_000, allow_private_hosts=True, fetcher=fetcher)
    results = text_backend(server, reader=reader).text_search("founded", top_k=1)
    assert results.error is None and [i.title for i in results.items] == ["Page 4"]
    chat = [r.json()["messages"][1]["content"] for r in server.requests if r.path == "/v1/chat/completions"]
    assert len(chat) == 1 and "founded in 1887" in chat[0] and "menu" not in chat[0]
    with pytest.raises(Exception, match="response of 50033 bytes exceeds the limit of 10000 bytes"):
        reader.read(server.url("/pages/1"))
    with pytest.raises(Exception, match="response exceeds the limit of 10000 bytes"):
        reader.read(server.url("/pages/2"))
    truncating = LocalExtractor(max_bytes=10_000, oversize="truncate", allow_private_hosts=True, fetcher=fetcher)
    assert 0 < len(truncating.read(server.url("/pages/2"))) <= 10_000


def test_local_extractor_refuses_private_hosts_by_default(server: LoopbackServer) -> None:
    server.route("/pages/1", Reply(body="<p>hi</p>", content_type="text/html"))
    with pytest.raises(Exception, match="not a public address"):
        LocalExtractor(fetcher=HttpFetcher(FAST)).read(server.url("/pages/1"))
    assert server.requests == []


def test_jina_reader_refuses_oversized_response(server: LoopbackServer) -> None:
    page = "https://example.org/a#frag"
    server.route("/reader/https://example.org/a", Reply(body="z" * 20_000))
    reader = JinaReader(server.url("/reader"), max_bytes=5_000, api_key="jina-secret-123456", fetcher=HttpFetcher(FAST))
    with pytest.raises(Exception, match="exceeds the limit"):
        reader.read(page)
    assert server.requests[0].headers.get("Authorization") == "Bearer jina-secret-123456"
    assert "jina-secret" not in reader.reader_id + repr(reader)


def test_backend_ids_name_result_changing_parameters_only(server: LoopbackServer) -> None:
    reader = JinaReader(server.url("/reader"))
    summarizer = ChatSummarizer("m1", server.url("/v1"), api_key="sk-summ-SECRET-1234")
    a = SerpApiTextSearch(KEY, reader=reader, summarizer=summarizer, hl="en", gl="us", location="Austin, Texas")
    b = SerpApiTextSearch(KEY, reader=reader, summarizer=summarizer, hl="de", gl="us", location="Austin, Texas")
    c = SerpApiTextSearch(KEY, reader=reader, summarizer=ChatSummarizer("m2", server.url("/v1")), hl="en", gl="us",
                          location="Austin, Texas")
    assert len({a.backend_id, b.backend_id, c.backend_id}) == 3
    for part in ("engine=google", "hl=en", "gl=us", "location=Austin, Texas", f"jina({server.url('/reader')}",
                 "model=m1", "prompt=summary-v1"):
        assert part in a.backend_id
    assert "top_k" not in a.backend_id
    image = SerpApiImageSearch(KEY, hl="en", country="fr")
    assert image.backend_id == "serpapi-image:engine=google_lens,country=fr,hl=en"
    assert SerpApiImageSearch("another-key-000000", hl="en", country="fr").backend_id == image.backend_id
    combined = CombinedSearch(image, a)
    assert image.backend_id in combined.backend_id and a.backend_id in combined.backend_id
    for text in (a.backend_id, repr(a), repr(image), repr(summarizer), combined.backend_id):
        assert KEY not in text and "sk-summ-SECRET" not in text


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="'ftp://x'"):
        SerpApiImageSearch(KEY, base_url="ftp://x")
    with pytest.raises(ValueError, match="transport"):
        SerpApiImageSearch(KEY, transport="carrier-pigeon")
    with pytest.raises(ValueError, match="'api_key'"):
        SerpApiImageSearch(KEY, extra_params={"api_key": "x"})
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="price"):
        UsageMeter({"serpapi/google": -1.0})


# --- secrets --------------------------------------------------------------------------------------


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_key_never_leaks(server: LoopbackServer, transport: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = search_path(transport)

    def echo(status: int) -> object:
        def handler(request: Request) -> Reply:
            raw = "&".join(f"{k}={v[0]}" for k, v in request.query.items())
            return Reply(status, {"error": f"bad request {raw} (key {request.param('api_key')})"})
        return handler

    errors: list[str] = []
    backend = image_backend(server, transport)
    text = SerpApiTextSearch(KEY, base_url=server.base_url, transport=transport, settings=FAST)
    for reply in (echo(500), echo(400), echo(429)):
        server.route(path, reply)
        errors.append(backend.image_search(query_image(), 3).error or "")
        errors.append(text.text_search(f"query {KEY}", 3).error or "")
    server.route(path, Reply(body=f"<html>not json {KEY} api_key={KEY}</html>".encode(), content_type="application/json"))
    errors.append(backend.image_search(query_image(), 3).error or "")
    server.route(path, Reply(body={}, delay_s=1.0))
    errors.append(backend.image_search(query_image(), 3).error or "")
    closed = SerpApiImageSearch(KEY, base_url=_closed_port_url(), transport=transport, settings=FAST)
    errors.append(closed.image_search(query_image(), 3).error or "")

    assert all(errors) and len(errors) == 9
    logged = [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("api_key=***" in m for m in logged)  # the HTTP libraries' URL logs were seen, redacted
    for haystack in [*errors, *logged, repr(backend), backend.backend_id, repr(text), text.backend_id,
                     str(backend.usage()), repr(backend.transport), repr(vars(backend))]:
        assert KEY not in haystack
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(backend._api_key)


def test_redact_forms() -> None:
    Secret("registered-SECRET-value-42")
    text = ('GET /search?engine=google&api_key=abc123&q=x token: t0ps3cret {"api_key": "k9"} '
            "Authorization: Bearer eyJhbGciOi http://user:pw@host/p raw registered-SECRET-value-42 "
            "quoted registered-SECRET-value-42")
    cleaned = redact(text)
    for secret in ("abc123", "t0ps3cret", "k9", "eyJhbGciOi", "user:pw", "registered-SECRET-value-42"):
        assert secret not in cleaned
    assert "engine=google" in cleaned and "q=x" in cleaned and "host/p" in cleaned


def test_first_sentences_caps_without_splitting_abbreviations() -> None:
    text = "The U.S. Army was formed in 1775. Dr. Smith agreed. Three! Four? Five. Six."
    assert first_sentences(text, 5) == "The U.S. Army was formed in 1775. Dr. Smith agreed. Three! Four? Five."
    assert first_sentences("No final period", 5) == "No final period"


def test_combined_search_counts_a_shared_meter_once(server: LoopbackServer) -> None:
    server.route("/search", Reply(body={"visual_matches": []}))
    meter = UsageMeter()
    combined = CombinedSearch(image_backend(server, "official", meter=meter),
                              SerpApiTextSearch(KEY, base_url=server.base_url, settings=FAST, meter=meter))
    combined.image_search(query_image(), 2)
    combined.text_search("q", 2)
    assert combined.usage()["billable_calls"] == {"serpapi/google": 1, "serpapi/google_lens": 1}
    assert combined.usage()["estimated_cost_usd"] == 0.03


def test_each_backend_serves_one_kind_and_checks_top_k_and_key_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERPAPI_API_KEY", raising=False)
    image, text = SerpApiImageSearch(), SerpApiTextSearch()
    assert text.image_search(QueryImage(np.zeros((2, 2, 3), np.uint8)), 3).error == \
        "image search is not available from the text search backend"
    assert image.text_search("q", 3).error == "text search is not available from the image search backend"
    assert "top_k must be an int >= 1, got 0" in (text.text_search("q", 0).error or "")
    assert "no SerpApi API key" in (image.image_search(QueryImage(np.zeros((2, 2, 3), np.uint8)), 1).error or "")
