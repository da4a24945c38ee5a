"""An LLM judge for open-ended answers, over any OpenAI-compatible chat-completions endpoint.

Why: exact match under-counts correct free-form answers ("the Eiffel Tower" vs "Eiffel Tower, Paris"),
and papers in this area (MMSearch-R1 included) report LLM-judged accuracy. To keep that number
reproducible, the judge prompt is ours and versioned (`PROMPT_VERSION`), the reply format is parsed
strictly, and every verdict is cached on disk under a key of everything that can change it (judge
model, prompt version, question, image digest, gold, candidates, response): re-scoring a run is
free and gives the same verdicts.

Reply format (the one we ask for and accept): a single JSON object and nothing else,
`{"verdict": "yes" | "no", "reason": "<one sentence>"}` — keys exactly these two, the verdict
case-insensitive; one surrounding Markdown code fence is tolerated. A malformed reply gets one retry
with a reminder of the format; a second malformed reply raises `JudgeError` quoting the reply.

HTTP: POST `<base_url>/chat/completions`; 429, 5xx and transport errors are retried with exponential
back-off (honouring `Retry-After`), other 4xx fail at once. A semaphore bounds requests in flight.
The cache stores JSON bytes (never pickles), so a cache directory is safe to share.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

try:
    import httpx
    from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
except ImportError as _error:  # pragma: no cover - depends on the installation
    raise ImportError("the LLM judge needs httpx and tenacity: pip install 'mmsearch-gym[judge]'") from _error

from mmsearch_gym.imaging import ImageLike, load_rgb
from mmsearch_gym.search.http import retry_after_seconds
from mmsearch_gym.search.keys import image_digest
from mmsearch_gym.search.types import EncodedImage

PROMPT_VERSION = "judge-v1"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
REPLY_EXCERPT_CHARS = 300

SYSTEM_PROMPT = """\
You grade answers to visual questions. You are given a question about an image, the reference \
answer, other acceptable answers, and a response to grade. Decide whether the response gives the \
same answer as the reference answer or as one of the acceptable answers.

Rules:
- Judge meaning, not wording: synonyms, translations, abbreviations, extra correct detail and \
different formatting of the same name, date or number are fine.
- The response is wrong if it gives a different answer, several alternative answers, an answer that \
is less specific than the reference in a way that matters, or no answer.
- Numbers must agree up to rounding and units.
- The reference answers are correct by definition; the image is context only.

Reply with exactly one JSON object and nothing else:
{"verdict": "yes" or "no", "reason": "<one short sentence>"}"""

REMINDER = ("Your reply could not be parsed ({problem}). Reply again with only a JSON object of the "
            "form {{\"verdict\": \"yes\" or \"no\", \"reason\": \"<one short sentence>\"}} and nothing else.")

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)


class JudgeError(RuntimeError):
    """The judge could not produce a verdict (HTTP failure after retries, or malformed replies)."""


class VerdictFormatError(ValueError):
    """A reply that does not follow the verdict format; the message says what is wrong."""


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str
    cached: bool = field(default=False, compare=False)
    """True when the verdict came from the on-disk cache (no request was made)."""


@dataclass(frozen=True)
class JudgeItem:
    """One answer to judge. `gold` is the reference answer(s); `candidates` other accepted answers."""

    question: str
    gold: tuple[str, ...]
    response: str
    candidates: tuple[str, ...] = ()
    image: ImageLike | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gold", _strings(self.gold, "gold"))
        object.__setattr__(self, "candidates", _strings(self.candidates, "candidates"))
        for name in ("question", "response"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"JudgeItem.{name} must be a string, got {type(getattr(self, name)).__name__}")
        if not self.gold:
            raise ValueError("JudgeItem.gold needs at least one reference answer")


def _strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be a string or a list of strings, got {value!r}")


def parse_verdict(text: str | None) -> Verdict:
    """The verdict in a reply, or VerdictFormatError saying why the reply does not follow the format."""
    if not isinstance(text, str) or not text.strip():
        raise VerdictFormatError("empty reply")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except json.JSONDecodeError as error:
        raise VerdictFormatError(f"not a JSON object: {error.msg}") from error
    if not isinstance(value, dict):
        raise VerdictFormatError(f"expected a JSON object, got {type(value).__name__}")
    if set(value) != {"verdict", "reason"}:
        raise VerdictFormatError(f"expected exactly the keys 'verdict' and 'reason', got {sorted(value)}")
    verdict, reason = value["verdict"], value["reason"]
    if not isinstance(verdict, str) or verdict.strip().lower() not in ("yes", "no"):
        raise VerdictFormatError(f"'verdict' must be \"yes\" or \"no\", got {verdict!r}")
    if not isinstance(reason, str):
        raise VerdictFormatError(f"'reason' must be a string, got {type(reason).__name__}")
    return Verdict(correct=verdict.strip().lower() == "yes", reason=reason.strip())


def _excerpt(text: Any, limit: int = REPLY_EXCERPT_CHARS) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


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


class _RetryableHTTP(Exception):
    def __init__(self, status: int, body: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    return retry_after_seconds(response.headers.get("retry-after"))


class LLMJudge:
    """Judges answers with a chat model behind an OpenAI-compatible endpoint.

    Args:
        model: the judge model name sent to the endpoint (part of the cache key).
        base_url: e.g. "https://api.openai.com/v1" or a local vLLM "http://127.0.0.1:8000/v1"; a URL
            without "/v1" gets it appended, one ending in "/chat/completions" is used as it is.
        api_key: the key; None reads the environment variable `api_key_env`. With neither, no
            Authorization header is sent (local servers).
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
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, got {concurrency!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.model = model
        self.endpoint = self._endpoint(base_url)
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.concurrency = concurrency
        self.include_image = include_image
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self._client = httpx.Client(timeout=timeout, trust_env=trust_env)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self.requests = 0
        """HTTP requests sent (retries included)."""
        self.cache_hits = 0
        self._cache: Any = None
        if cache_dir is not None:
            import diskcache

            self._cache = diskcache.Cache(str(cache_dir))

    @staticmethod
    def _endpoint(base_url: str) -> str:
        url = base_url.rstrip("/")
        if url.endswith("/chat/completions"):
            return url
        return f"{url}/chat/completions" if url.endswith("/v1") else f"{url}/v1/chat/completions"

    # ----------------------------------------------------------------------------- public API

    def judge(self, question: str, gold: str | Sequence[str], response: str,
              candidates: Sequence[str] = (), image: ImageLike | None = None) -> Verdict:
        """The verdict on `response` (cached when a cache directory is set)."""
        return self.judge_item(JudgeItem(question, _strings(gold, "gold"), response,
                                         _strings(candidates, "candidates"), image))

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
                                 f"last reply: {_excerpt(second)}; first reply: {_excerpt(reply)}") from again
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
        self._client.close()
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

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableHTTP) and error.retry_after is not None:
            return min(error.retry_after, self.max_backoff)
        return float(min(self.max_backoff, self.backoff * 2 ** (state.attempt_number - 1)))

    def _complete(self, messages: list[dict[str, Any]]) -> str | None:
        payload: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                   **({"max_tokens": self.max_tokens} if self.max_tokens is not None else {}),
                                   **self.extra_body}
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        retrying = Retrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._wait, reraise=True,
                            retry=retry_if_exception_type((_RetryableHTTP, httpx.TransportError)))
        try:
            for attempt in retrying:
                with attempt:
                    response = self._post(payload, headers)
        except _RetryableHTTP as error:
            raise JudgeError(f"judge endpoint {self.endpoint} failed after {self.max_retries + 1} attempts: "
                             f"{error}") from error
        except httpx.TransportError as error:
            raise JudgeError(f"judge endpoint {self.endpoint} unreachable after {self.max_retries + 1} "
                             f"attempts: {type(error).__name__}: {error}") from error
        try:
            body = response.json()
            content = body["choices"][0]["message"].get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as error:
            raise JudgeError(f"judge endpoint {self.endpoint} sent a response that is not a chat completion: "
                             f"{_excerpt(response.text)}") from error
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else None

    def _post(self, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        with self._slots:
            with self._lock:
                self.requests += 1
            response = self._client.post(self.endpoint, json=payload, headers=headers)
        if response.status_code == 429 or response.status_code >= 500:
            raise _RetryableHTTP(response.status_code, _excerpt(response.text), _retry_after(response))
        if response.status_code >= 400:
            raise JudgeError(f"judge endpoint {self.endpoint} answered HTTP {response.status_code}: "
                             f"{_excerpt(response.text)}")
        return response

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


# --------------------------------------------------------------------------------- run records

RECORD_KEYS = ("sample_id", "question", "answer", "gold")


@dataclass(frozen=True)
class RecordVerdict:
    sample_id: str
    correct: bool
    reason: str
    cached: bool = False
    error: str | None = None
    """The JudgeError message when on_error="record" (the record then counts as incorrect)."""


@dataclass(frozen=True)
class JudgedRecords:
    verdicts: tuple[RecordVerdict, ...]
    accuracy: float
    """Share of records judged correct (0.0 for no records); errors and missing answers count as wrong."""
    n: int
    n_correct: int
    n_errors: int
    judge_model: str
    prompt_version: str = PROMPT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdicts": [asdict(v) for v in self.verdicts]}


ImageLookup = Union[Callable[[str], Optional[ImageLike]], Mapping[str, ImageLike]]


def _record_item(position: int, record: Mapping[str, Any], images: ImageLookup | None
                 ) -> tuple[str, JudgeItem | None]:
    for key in RECORD_KEYS:
        if key not in record:
            raise ValueError(f"evaluation record {position}: missing key {key!r} (has {sorted(record)})")
    sample_id = str(record["sample_id"])
    answer = record["answer"]
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return sample_id, None
    if not isinstance(answer, str):
        raise ValueError(f"evaluation record {position} ({sample_id}): 'answer' must be a string or None, "
                         f"got {type(answer).__name__}")
    image = record.get("image")
    if image is None and images is not None:
        image = images.get(sample_id) if isinstance(images, Mapping) else images(sample_id)
    try:
        item = JudgeItem(question=record["question"], gold=record["gold"], response=answer,
                         candidates=record.get("candidates") or (), image=image)
    except ValueError as error:
        raise ValueError(f"evaluation record {position} ({sample_id}): {error}") from error
    return sample_id, item


def judge_records(records: Iterable[Mapping[str, Any]], judge: LLMJudge, *,
                  images: ImageLookup | None = None,
                  on_error: Literal["raise", "record"] = "raise") -> JudgedRecords:
    """Judge evaluation records and compute judged accuracy.

    records: dicts with `sample_id`, `question`, `answer` (the final answer; None = none given),
        `gold` (str or list of str) and optionally `candidates` and `image`.
    images: sample_id -> image (a mapping or a function) for records without an `image`, so a
        run directory's records can be judged with the dataset's images.
    on_error: "raise" stops at the first JudgeError; "record" marks that record wrong with the error.
    A record with no answer is wrong without asking the judge.
    """
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    prepared = [_record_item(position, record, images) for position, record in enumerate(records)]
    to_judge = [item for _, item in prepared if item is not None]
    results = iter(judge.judge_many(to_judge, return_exceptions=on_error == "record"))
    verdicts: list[RecordVerdict] = []
    for sample_id, item in prepared:
        if item is None:
            verdicts.append(RecordVerdict(sample_id, False, "no final answer"))
            continue
        result = next(results)
        if isinstance(result, JudgeError):
            verdicts.append(RecordVerdict(sample_id, False, "judge failed", error=str(result)))
        else:
            verdicts.append(RecordVerdict(sample_id, result.correct, result.reason, cached=result.cached))
    n_correct = sum(v.correct for v in verdicts)
    return JudgedRecords(verdicts=tuple(verdicts), accuracy=n_correct / len(verdicts) if verdicts else 0.0,
                         n=len(verdicts), n_correct=n_correct, n_errors=sum(v.error is not None for v in verdicts),
                         judge_model=judge.model)


__all__ = [
    "DEFAULT_API_KEY_ENV", "DEFAULT_BASE_URL", "JudgeError", "JudgeItem", "JudgedRecords", "LLMJudge",
    "PROMPT_VERSION", "RecordVerdict", "SYSTEM_PROMPT", "Verdict", "VerdictFormatError", "image_data_url",
    "judge_records", "parse_verdict",
]
