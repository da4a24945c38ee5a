"""An LLM judge for open-ended answers, over any OpenAI-compatible chat-completions endpoint.

Why: exact match under-counts correct free-form answers ("the Eiffel Tower" vs "Eiffel Tower, Paris"),
and papers in this area (MMSearch-R1 included) report LLM-judged accuracy. To keep that number
reproducible, the judge prompt is ours and versioned (`PROMPT_VERSION`), the reply format is parsed
strictly (`judge_format`), and every verdict is cached on disk under a key of everything that can
change it (judge model, prompt version, question, image digest, gold, candidates, response):
re-scoring a run is free and gives the same verdicts. A malformed reply gets one retry with a reminder
of the format; a second malformed reply raises `JudgeError` quoting the reply.

HTTP goes through `mmsearch_gym.net.chat.ChatClient`, the client the eval agent and the summarizer
share: 429, 5xx and transport errors are retried with exponential back-off (waiting at least a
server's `Retry-After`), other 4xx fail at once, a semaphore bounds requests in flight, and every
error message is redacted (the key, ``user:key@`` in the URL, an echoed ``Authorization`` header), so
nothing secret reaches `judged.json`. The cache stores JSON bytes (never pickles), so a cache
directory is safe to share. Judging run records lives in `judge_records`; both are re-exported here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

try:
    from mmsearch_gym.net.chat import CHAT_PATH, ChatClient, chat_endpoint, message_text
    from mmsearch_gym.net.retry import HttpError, RetryPolicy
except ImportError as _error:  # pragma: no cover - depends on the installation
    raise ImportError("the LLM judge needs httpx and tenacity: pip install 'mmsearch-gym[judge]'") from _error

from mmsearch_gym.benchmarks.judge_format import (PROMPT_VERSION, REMINDER, SYSTEM_PROMPT, JudgeError, JudgeItem,
                                                  Verdict, VerdictFormatError, as_strings, excerpt, parse_verdict)
from mmsearch_gym.benchmarks.judge_records import JudgedRecords, RecordVerdict, judge_records
from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.imaging import ImageLike, load_rgb
from mmsearch_gym.search.keys import image_digest
from mmsearch_gym.search.types import EncodedImage

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"

__all__ = [
    "DEFAULT_API_KEY_ENV", "DEFAULT_BASE_URL", "JudgeError", "JudgeItem", "JudgedRecords", "LLMJudge",
    "PROMPT_VERSION", "RecordVerdict", "SYSTEM_PROMPT", "Verdict", "VerdictFormatError", "image_data_url",
    "judge_records", "parse_verdict",
]


def image_data_url(image: ImageLike) -> str:
    """A `data:` URL of the image: encoded bytes (or a file's bytes) as they are when their type is
    recognisable, otherwise the pixels re-encoded as PNG."""
    data: bytes | None = None
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)) and Path(image).is_file():
        data = Path(image).read_bytes()
    if data is None or EncodedImage(data).mime_type == "application/octet-stream":
        data = EncodedImage.from_array(load_rgb(image)).data
    encoded = EncodedImage(data)
    return f"data:{encoded.mime_type};base64,{base64.b64encode(encoded.data).decode('ascii')}"


class LLMJudge:
    """Judges answers with a chat model behind an OpenAI-compatible endpoint.

    Args:
        model: the judge model name sent to the endpoint (part of the cache key).
        base_url: e.g. "https://api.openai.com/v1" or a local vLLM "http://127.0.0.1:8000/v1"; a URL
            without "/v1" gets it appended, one ending in "/chat/completions" is used as it is.
        api_key: the key; None reads the environment variable `api_key_env`. With neither, no
            Authorization header is sent (local servers). ``user:key@`` in `base_url` is sent as Basic
            auth. Keys never appear in errors, `endpoint` or `judged.json`.
        timeout: seconds per HTTP request. max_retries: retries after the first try on 429/5xx and
            transport errors; backoff / max_backoff: exponential back-off bounds in seconds.
        concurrency: most requests in flight at once (also `judge_many`'s worker count).
        include_image: send the question image as a base64 data URL (its digest then enters the key).
        cache_dir: a diskcache directory for verdicts (None: no cache).
        temperature, max_tokens (None: not sent), extra_body: sent with each request.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str | None = None,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        include_image: bool = True,
        cache_dir: str | Path | None = None,
        temperature: float = 0.0,
        max_tokens: int | None = 512,
        extra_body: Mapping[str, Any] | None = None,
        trust_env: bool = True,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError("model must be a non-empty string")
        self.concurrency = require_int("concurrency", concurrency, low=1)
        self.max_retries = require_int("max_retries", max_retries, low=0)
        self.backoff = require_number("backoff", backoff, low=0.0)
        self.max_backoff = require_number("max_backoff", max_backoff, low=0.0)
        self.model = model
        self._chat = ChatClient(
            self._endpoint(base_url) if isinstance(base_url, str) else base_url, api_key=api_key,
            api_key_env=api_key_env, timeout=timeout, concurrency=self.concurrency, trust_env=trust_env,
            retry=RetryPolicy(max_attempts=self.max_retries + 1, initial_wait_s=self.backoff,
                              max_wait_s=self.max_backoff, jitter_s=0.0))
        self.endpoint = self._chat.endpoint
        """The endpoint as shown in errors: no user info, query or fragment."""
        self.include_image = include_image
        self.temperature = require_number("temperature", temperature, low=0.0, high=2.0)
        self.max_tokens = None if max_tokens is None else require_int("max_tokens", max_tokens, low=1)
        self.extra_body = dict(extra_body or {})
        self._lock = threading.Lock()
        self.cache_hits = 0
        self._cache: Any = None
        if cache_dir is not None:
            import diskcache

            self._cache = diskcache.Cache(str(cache_dir))

    @property
    def requests(self) -> int:
        """HTTP requests sent (retries included)."""
        return self._chat.requests

    @staticmethod
    def _endpoint(base_url: str) -> str:
        """The chat endpoint of `base_url`: "/v1" is added to a path without it (a query string stays
        at the end)."""
        parts = urlsplit(base_url.strip())
        path = parts.path.rstrip("/")
        if not path.endswith(("/v1", CHAT_PATH)):
            path += "/v1"
        return chat_endpoint(urlunsplit(parts._replace(path=path)))

    # ----------------------------------------------------------------------------- public API

    def judge(self, question: str, gold: str | Sequence[str], response: str,
              candidates: Sequence[str] = (), image: ImageLike | None = None) -> Verdict:
        """The verdict on `response` (cached when a cache directory is set)."""
        return self.judge_item(JudgeItem(question, as_strings(gold, "gold"), response,
                                         as_strings(candidates, "candidates"), image))

    def judge_item(self, item: JudgeItem) -> Verdict:
        image = item.image if self.include_image else None
        digest = image_digest(load_rgb(image)) if image is not None else None
        key = self.cache_key(item, digest)
        cached = self._cache_get(key)
        if cached is not None:
            return cached
        messages = self._messages(item, image)
        reply = self._complete(messages)
        try:
            verdict = parse_verdict(reply)
        except VerdictFormatError as problem:
            messages = messages + [{"role": "assistant", "content": reply or ""},
                                   {"role": "user", "content": REMINDER.format(problem=problem)}]
            second = self._complete(messages)
            try:
                verdict = parse_verdict(second)
            except VerdictFormatError as again:
                raise JudgeError(f"judge {self.model!r} replied in the wrong format twice ({again}); "
                                 f"last reply: {excerpt(second)}; first reply: {excerpt(reply)}") from again
        self._cache_put(key, verdict)
        return verdict

    def judge_many(self, items: Sequence[JudgeItem], return_exceptions: bool = False
                   ) -> list[Verdict | JudgeError]:
        """Verdicts in the order of `items`, up to `concurrency` at a time. With return_exceptions,
        a JudgeError takes the place of its verdict instead of being raised."""
        def one(item: JudgeItem) -> Verdict | JudgeError:
            try:
                return self.judge_item(item)
            except JudgeError as error:
                if return_exceptions:
                    return error
                raise

        if len(items) <= 1 or self.concurrency == 1:
            return [one(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as pool:
            return list(pool.map(one, items))

    def cache_key(self, item: JudgeItem, image_digest_hex: str | None = None) -> str:
        """sha256 over everything that decides a verdict; `image_digest_hex` is None when no image is sent."""
        payload = {"model": self.model, "prompt_version": PROMPT_VERSION, "question": item.question,
                   "image": image_digest_hex, "gold": list(item.gold), "candidates": list(item.candidates),
                   "response": item.response}
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def close(self) -> None:
        self._chat.close()
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> LLMJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------- internals

    def _messages(self, item: JudgeItem, image: ImageLike | None) -> list[dict[str, Any]]:
        others = "; ".join(item.gold[1:] + item.candidates) or "(none)"
        text = (f"Question: {item.question}\n"
                f"Reference answer: {item.gold[0]}\n"
                f"Other acceptable answers: {others}\n"
                f"Response to grade: {item.response}")
        content: list[dict[str, Any]] = []
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
        content.append({"type": "text", "text": text})
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]

    def _complete(self, messages: list[dict[str, Any]]) -> str | None:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                   **({"max_tokens": self.max_tokens} if self.max_tokens is not None else {}),
                                   **self.extra_body}
        try:
            body = self._chat.complete(payload)
        except HttpError as error:
            raise JudgeError(f"judge {self.model!r}: {error}") from None
        try:
            content = body["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise JudgeError(f"judge endpoint {self.endpoint} sent a response that is not a chat completion: "
                             f"{excerpt(body)}") from None
        return message_text(content)

    def _cache_get(self, key: str) -> Verdict | None:
        if self._cache is None:
            return None
        raw = self._cache.get(key)
        if not isinstance(raw, bytes):
            return None
        try:
            value = json.loads(raw.decode("utf-8"))
            verdict = Verdict(correct=bool(value["correct"]), reason=str(value["reason"]), cached=True)
        except (ValueError, KeyError, TypeError):
            return None  # an unreadable entry is a miss; it is overwritten by the fresh verdict
        with self._lock:
            self.cache_hits += 1
        return verdict

    def _cache_put(self, key: str, verdict: Verdict) -> None:
        if self._cache is None:
            return
        value = {"correct": verdict.correct, "reason": verdict.reason, "model": self.model,
                 "prompt_version": PROMPT_VERSION}
        self._cache.set(key, json.dumps(value, ensure_ascii=False).encode("utf-8"))
