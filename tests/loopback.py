"""A scripted HTTP server on 127.0.0.1 for testing the live search backends offline.

Why: the backends must be exercised against real sockets (timeouts, status codes, streamed bodies,
malformed JSON) without contacting the internet. Each path gets a script: a sequence of `Reply`s
(consumed one per request, the last one repeating) or a function of the request. Every request is
recorded, so tests can assert what was sent (and that nothing was sent).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted response. `body` may be bytes, str, or a JSON-able object (sent as JSON).
    `delay_s` sleeps before the status line (to trigger read timeouts); `declare_length=False`
    omits Content-Length (the body is delimited by closing the connection)."""

    status: int = 200
    body: Any = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    declare_length: bool = True

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode("utf-8"), self.content_type or "application/json"


@dataclass(frozen=True)
class Request:
    """A request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


Script = Union[list[Reply], Callable[[Request], Reply]]


class LoopbackServer:
    """Threaded HTTP/1.0 server on 127.0.0.1 with a free port. Use as a context manager.

    `route(path, *replies)` or `route(path, handler)`; unknown paths get 404. Paths are matched
    without the query string; `raw_path` (for reader-style ``/http://...`` paths) is matched first.
    """

    def __init__(self) -> None:
        self._scripts: dict[str, Script] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def route(self, path: str, *script: Reply | Callable[[Request], Reply]) -> None:
        with self._lock:
            if len(script) == 1 and callable(script[0]) and not isinstance(script[0], Reply):
                self._scripts[path] = script[0]  # type: ignore[assignment]
            else:
                self._scripts[path] = list(script)  # type: ignore[arg-type]
            self._counts[path] = 0

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path == path)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _reply_for(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            script = self._scripts.get(request.path)
            if script is None:
                return Reply(404, {"error": f"no route for {request.path}"})
            if callable(script):
                handler = script
            else:
                index = min(self._counts[request.path], len(script) - 1)
                self._counts[request.path] += 1
                return script[index]
        return handler(request)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Request(method, split.path, parse_qs(split.query), dict(handler.headers.items()), body)
        try:
            reply = self._reply_for(request)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            data, content_type = reply.encoded()
            handler.send_response(reply.status)
            handler.send_header("Content-Type", content_type)
            if reply.declare_length:
                handler.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            pass  # the client gave up (timeout, size limit): expected in these tests


def jpeg_bytes(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (16, 12)) -> bytes:
    """A small real JPEG."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def webp_bytes(color: tuple[int, int, int] = (20, 40, 210), size: tuple[int, int] = (16, 12)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="WEBP")
    return buffer.getvalue()


def chat_reply(content: str) -> dict[str, Any]:
    """An OpenAI-compatible chat completion body."""
    return {"id": "cmpl-test", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}
