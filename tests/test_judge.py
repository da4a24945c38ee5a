"""The LLM judge against a loopback chat-completions server that plays a scripted list of replies."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

pytest.importorskip("httpx")
pytest.importorskip("tenacity")

from mmsearch_gym.benchmarks.judge import (  # noqa: E402
    PROMPT_VERSION, JudgeError, LLMJudge, Verdict, VerdictFormatError, judge_records, parse_verdict,
)

YES = json.dumps({"verdict": "yes", "reason": "Same person."})
NO = json.dumps({"verdict": "no", "reason": "Different city."})


class ChatServer:
    """Answers POST /v1/chat/completions from a script of (status, assistant content) pairs;
    once the script is used up it answers `default` (or `responder(body)` when set).
    Keeps every request body, header and path."""

    def __init__(self) -> None:
        self.script: list[tuple[int, str]] = []
        self.default: tuple[int, str] = (200, YES)
        self.responder: Callable[[dict[str, Any]], tuple[int, str]] | None = None
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    server.paths.append(self.path)
                    if server.responder is not None:
                        status, content = server.responder(body)
                    else:
                        status, content = server.script.pop(0) if server.script else server.default
                if status == 200:
                    payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": content}}]}
                else:
                    payload = {"error": {"message": content}}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ChatServer]:
    chat = ChatServer()
    yield chat
    chat.close()


def make_judge(server: ChatServer, **kwargs: Any) -> LLMJudge:
    options: dict[str, Any] = {"base_url": server.base_url, "backoff": 0.01, "max_backoff": 0.05,
                               "timeout": 10.0, "trust_env": False, **kwargs}
    return LLMJudge("judge-model", **options)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_yes_and_no_verdicts_and_request_shape(server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_JUDGE_KEY", "secret-123")
    server.script = [(200, YES), (200, NO)]
    with make_judge(server, api_key_env="MY_JUDGE_KEY") as judge:
        first = judge.judge("Who is this?", "Marie Curie", "It is Marie Curie.", candidates=["Maria Sklodowska"],
                            image=png())
        second = judge.judge("Which city?", ["Paris"], "Lyon")
    assert first == Verdict(True, "Same person.") and not first.cached
    assert second == Verdict(False, "Different city.")
    assert server.paths == ["/v1/chat/completions"] * 2
    assert server.headers[0]["Authorization"] == "Bearer secret-123"
    request = server.requests[0]
    assert request["model"] == "judge-model" and request["temperature"] == 0.0
    system, user = request["messages"]
    assert system["role"] == "system" and '"verdict"' in system["content"]
    image_part, text_part = user["content"]
    assert image_part["image_url"]["url"].startswith("data:image/png;base64,")
    for expected in ("Who is this?", "Reference answer: Marie Curie", "Maria Sklodowska",
                     "Response to grade: It is Marie Curie."):
        assert expected in text_part["text"]
    assert [part["type"] for part in server.requests[1]["messages"][1]["content"]] == ["text"]


def test_malformed_reply_is_retried_once_with_a_reminder(server: ChatServer) -> None:
    server.script = [(200, "Yes, that is right."), (200, "```json\n" + YES + "\n```")]
    with make_judge(server) as judge:
        verdict = judge.judge("Q?", "A", "A")
    assert verdict.correct and len(server.requests) == 2
    retry = server.requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Yes, that is right."}
    assert retry[-1]["role"] == "user" and "only a JSON object" in retry[-1]["content"]


def test_malformed_twice_raises_with_the_reply(server: ChatServer) -> None:
    server.script = [(200, "Verdict: yes"), (200, '{"verdict": "maybe", "reason": "unsure"}')]
    with make_judge(server) as judge, pytest.raises(JudgeError) as caught:
        judge.judge("Q?", "A", "B")
    assert "maybe" in str(caught.value) and "Verdict: yes" in str(caught.value)
    assert len(server.requests) == 2


def test_server_errors_are_retried(server: ChatServer) -> None:
    server.script = [(500, "boom"), (429, "slow down"), (200, YES)]
    with make_judge(server) as judge:
        assert judge.judge("Q?", "A", "A").correct
    assert len(server.requests) == 3

    server.requests.clear()
    server.script = [(503, "down")] * 3
    with make_judge(server, max_retries=2) as judge, pytest.raises(JudgeError, match=r"HTTP 503.*gave up after 3 attempts"):
        judge.judge("Q?", "A", "A")
    assert len(server.requests) == 3

    server.requests.clear()
    server.script = [(400, "bad request: unknown model")]
    with make_judge(server) as judge, pytest.raises(JudgeError, match=r"HTTP 400.*unknown model"):
        judge.judge("Q?", "A", "A")
    assert len(server.requests) == 1  # client errors are not retried


def test_cache_hit_makes_no_request_and_survives_restarts(server: ChatServer, tmp_path: Path) -> None:
    cache = tmp_path / "verdicts"
    server.default = (200, NO)
    with make_judge(server, cache_dir=cache) as judge:
        first = judge.judge("Which city?", "Paris", "Lyon", image=png())
        again = judge.judge("Which city?", "Paris", "Lyon", image=png())
    assert len(server.requests) == 1 and again == first and again.cached and not first.cached
    with make_judge(server, cache_dir=cache) as judge:
        assert judge.judge("Which city?", "Paris", "Lyon", image=png()).cached
        judge.judge("Which city?", "Paris", "Marseille", image=png())  # a different response is a new key
        assert judge.requests == 1 and judge.cache_hits == 1
    assert len(server.requests) == 2

    import diskcache

    with diskcache.Cache(str(cache)) as store:
        values = [store[key] for key in store.iterkeys()]
    assert all(isinstance(v, bytes) for v in values)  # JSON bytes, never pickles
    assert {json.loads(v)["prompt_version"] for v in values} == {PROMPT_VERSION}


def test_judge_records_accuracy(server: ChatServer) -> None:
    def reply(body: dict[str, Any]) -> str:
        text = body["messages"][1]["content"][-1]["text"]
        return YES if "Response to grade: Paris" in text else NO

    records: list[dict[str, Any]] = [
        {"sample_id": "s1", "question": "Capital of France?", "answer": "Paris", "gold": "Paris", "candidates": []},
        {"sample_id": "s2", "question": "Capital of France?", "answer": "Lyon", "gold": ["Paris"],
         "candidates": ["Paris, France"]},
        {"sample_id": "s3", "question": "Capital of France?", "answer": None, "gold": "Paris", "candidates": []},
        {"sample_id": "s4", "question": "Capital of France?", "answer": "Paris", "gold": "Paris"},
    ]
    server.responder = lambda body: (200, reply(body))
    with make_judge(server, concurrency=3) as judge:
        result = judge_records(records, judge, images={"s1": png()})
    assert [v.sample_id for v in result.verdicts] == ["s1", "s2", "s3", "s4"]
    assert [v.correct for v in result.verdicts] == [True, False, False, True]
    assert result.verdicts[2].reason == "no final answer"
    assert result.n == 4 and result.n_correct == 2 and result.accuracy == 0.5 and result.n_errors == 0
    assert len(server.requests) == 3  # no request for the record without an answer
    assert result.to_dict()["verdicts"][0]["sample_id"] == "s1"


def test_judge_records_can_record_errors(server: ChatServer) -> None:
    server.default = (200, "not json at all")
    records = [{"sample_id": "s1", "question": "Q?", "answer": "A", "gold": "A", "candidates": []}]
    with make_judge(server) as judge:
        result = judge_records(records, judge, on_error="record")
        assert result.n_errors == 1 and result.accuracy == 0.0 and "not json" in (result.verdicts[0].error or "")
        with pytest.raises(JudgeError):
            judge_records(records, judge)
        with pytest.raises(ValueError, match=r"record 0: missing key 'gold'"):
            judge_records([{"sample_id": "x", "question": "Q", "answer": "A"}], judge)


def test_parse_verdict_is_strict() -> None:
    assert parse_verdict('  {"verdict": "YES", "reason": "ok"} ') == Verdict(True, "ok")
    assert parse_verdict('```\n{"verdict": "no", "reason": "r"}\n```') == Verdict(False, "r")
    for bad in ("", "yes", '{"verdict": "yes"}', '{"verdict": "yes", "reason": "r", "score": 1}',
                '{"verdict": true, "reason": "r"}', '[{"verdict": "yes", "reason": "r"}]',
                'Sure! {"verdict": "yes", "reason": "r"}'):
        with pytest.raises(VerdictFormatError):
            parse_verdict(bad)


def test_endpoint_forms() -> None:
    for base, endpoint in (("http://h:1/v1", "http://h:1/v1/chat/completions"),
                           ("http://h:1/", "http://h:1/v1/chat/completions"),
                           ("http://h:1/v1/chat/completions", "http://h:1/v1/chat/completions")):
        with LLMJudge("m", base_url=base, trust_env=False) as judge:
            assert judge.endpoint == endpoint
