"""`OpenAICompatibleAgent`: any server speaking OpenAI's chat-completions wire format.

vLLM's and SGLang's servers, `transformers serve`, hosted APIs: one agent covers them all. Why the
details:
- Images travel as base64 PNG `data:` URLs (`messages.to_openai_messages`): lossless and needing no
  file server, so the model sees exactly the env's pixels.
- Transient failures (429, 408, 5xx, connection errors, timeouts) are retried with exponential
  backoff (tenacity), honouring `Retry-After`; anything else, or retries running out, raises
  `AgentError` naming the URL, status and the start of the reply, so the evaluator can record
  the failure for that episode and go on with the others.
- `act_batch` sends up to `concurrency` requests at once from a thread pool (servers batch
  concurrent requests themselves); a failure of some episodes raises `AgentBatchError`, which
  carries the other episodes' actions.
- The API key is read from an environment variable (or given), sent only in the Authorization
  header, and never appears in `card()`, `repr()` or error messages.
- Servers drop the matched stop string from the reply; `stopping.restore_stop` puts it back so the
  env sees the whole action tag.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx
import tenacity

from mmsearch_gym.agents.base import AgentBatchError, AgentError, AgentBase, Observation
from mmsearch_gym.agents.messages import IMAGE_FORMATS, to_openai_messages
from mmsearch_gym.agents.stopping import ACTION_STOP_STRINGS, check_stop_strings, restore_stop, truncate_at_stop
from mmsearch_gym.search.http import retry_after_seconds

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: rate limits, timeouts and server-side failures."""
_BODY_EXCERPT = 500


class _Retryable(Exception):
    """A reply whose status says "try again later"."""

    def __init__(self, status: int, body: str, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body, self.retry_after = status, body, retry_after


def _public_url(url: str) -> str:
    """`url` without user info, query or fragment (which may hold credentials), for cards and errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _number(name: str, value: Any, low: float, integer: bool = False, allow_none: bool = False,
            strict: bool = False) -> None:
    if value is None and allow_none:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < low or (strict and value == low):
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be {'an integer' if integer else 'a number'} {relation} {low}, got {value!r}")


class OpenAICompatibleAgent(AgentBase):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint.

    Args:
        base_url: the API root, e.g. "http://127.0.0.1:8000/v1" (requests go to `{base_url}/chat/completions`).
        model: the model name the server expects.
        api_key: the key itself; default: read from the environment variable `api_key_env`
            (no Authorization header when neither is set, as local servers need none).
        api_key_env: name of that environment variable (recorded in the card; the key never is).
        temperature, top_p, max_tokens, seed: sampling parameters sent with each request
            (top_p and seed only when set).
        stop: stop strings (default: the action closing tags): sent as `stop`, and the reply is cut
            just after the first one either way.
        send_stop: False keeps `stop` out of the request (the reply is still cut locally), for
            servers that mishandle it: `transformers serve` 5.23 answers HTTP 500 to a VLM request
            carrying `stop` (it hands the processor to `StopStringCriteria` as the tokenizer).
        timeout: seconds per request (connect, read, write, pool each).
        max_retries: retries after the first attempt for 429/408/5xx, connection errors and timeouts.
        backoff_initial, backoff_max: exponential backoff (seconds) between attempts; a server's
            Retry-After is honoured up to `backoff_max`.
        concurrency: most requests in flight at once in `act_batch`.
        image_format: "PNG" (lossless, default), "JPEG" or "WEBP" for the data URLs.
        extra_body: extra JSON fields merged into every request (server-specific options).
    """

    name = "openai-compatible"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        top_p: float | None = None,
        max_tokens: int = 512,
        seed: int | None = None,
        stop: Sequence[str] | None = ACTION_STOP_STRINGS,
        send_stop: bool = True,
        timeout: float = 60.0,
        max_retries: int = 4,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        concurrency: int = 8,
        image_format: str = "PNG",
        extra_body: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(base_url, str) or urlsplit(base_url).scheme not in ("http", "https") \
                or not urlsplit(base_url).hostname:
            raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', "
                             f"got {base_url if not isinstance(base_url, str) else _public_url(base_url)!r}")
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(api_key_env, str) or not api_key_env:
            raise ValueError(f"api_key_env must be an environment variable name, got {api_key_env!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise ValueError(f"api_key must be a string or None, got a {type(api_key).__name__}")
        _number("temperature", temperature, 0.0)
        _number("max_tokens", max_tokens, 1, integer=True)
        _number("seed", seed, 0, integer=True, allow_none=True)
        _number("timeout", timeout, 0.0, strict=True)
        _number("max_retries", max_retries, 0, integer=True)
        _number("backoff_initial", backoff_initial, 0.0)
        _number("backoff_max", backoff_max, 0.0)
        _number("concurrency", concurrency, 1, integer=True)
        if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float))
                                  or not 0.0 < top_p <= 1.0):
            raise ValueError(f"top_p must be None or a number in (0, 1], got {top_p!r}")
        if not isinstance(image_format, str) or image_format.upper() not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
        if extra_body is not None and not isinstance(extra_body, Mapping):
            raise ValueError(f"extra_body must be a mapping of JSON fields, got {type(extra_body).__name__}")

        self.base_url = base_url.rstrip("/")
        self.endpoint = f"{self.base_url}/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self._api_key = api_key if api_key is not None else os.environ.get(api_key_env) or None
        self.temperature = float(temperature)
        self.top_p = None if top_p is None else float(top_p)
        self.max_tokens = max_tokens
        self.seed = seed
        self.stop = check_stop_strings(stop)
        if not isinstance(send_stop, bool):
            raise ValueError(f"send_stop must be True or False, got {send_stop!r}")
        self.send_stop = send_stop
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff_initial = float(backoff_initial)
        self.backoff_max = float(backoff_max)
        self.concurrency = concurrency
        self.image_format = image_format.upper()
        self.extra_body = dict(extra_body or {})
        if name is not None:
            self.name = name
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(self.timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    def __repr__(self) -> str:
        return f"OpenAICompatibleAgent(base_url={_public_url(self.base_url)!r}, model={self.model!r})"

    # ----------------------------------------------------------------------------------- requests

    def request_body(self, obs: Observation) -> dict[str, Any]:
        """The JSON body sent for one observation."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(obs, self.image_format),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.stop and self.send_stop:
            body["stop"] = list(self.stop)
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.seed is not None:
            body["seed"] = self.seed
        body.update(self.extra_body)
        return body

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _wait(self, state: tenacity.RetryCallState) -> float:
        backoff = min(self.backoff_max, self.backoff_initial * 2 ** (state.attempt_number - 1))
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, _Retryable) and error.retry_after is not None:
            return min(self.backoff_max, max(backoff, error.retry_after))
        return backoff

    def _post_once(self, body: Mapping[str, Any]) -> httpx.Response:
        response = self._client.post(self.endpoint, json=body)
        if response.status_code in RETRY_STATUS:
            raise _Retryable(response.status_code, response.text[:_BODY_EXCERPT],
                             retry_after_seconds(response.headers.get("retry-after")))
        return response

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        url = _public_url(self.endpoint)
        attempts = self.max_retries + 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts), wait=self._wait, reraise=True,
            retry=tenacity.retry_if_exception_type((_Retryable, httpx.TransportError)),
        )
        try:
            response = retrying(self._post_once, body)
        except _Retryable as error:
            raise AgentError(self._redact(f"POST {url} failed after {attempts} attempt(s): HTTP {error.status}: "
                                          f"{error.body}")) from None
        except httpx.TimeoutException as error:
            raise AgentError(self._redact(f"POST {url} timed out after {attempts} attempt(s) "
                                          f"(timeout {self.timeout:g} s): {type(error).__name__}")) from None
        except httpx.HTTPError as error:
            raise AgentError(self._redact(f"POST {url} failed after {attempts} attempt(s): "
                                          f"{type(error).__name__}: {error}")) from None
        if response.status_code != 200:
            raise AgentError(self._redact(f"POST {url} returned HTTP {response.status_code} (not retried): "
                                          f"{response.text[:_BODY_EXCERPT]}"))
        try:
            payload = response.json()
        except ValueError:
            raise AgentError(self._redact(f"POST {url} returned a body that is not JSON: "
                                          f"{response.text[:_BODY_EXCERPT]!r}")) from None
        if not isinstance(payload, dict):
            raise AgentError(f"POST {url} returned JSON that is not an object: {str(payload)[:_BODY_EXCERPT]}")
        return payload

    def _text(self, payload: Mapping[str, Any]) -> str:
        """The assistant text of a reply, with the stripped stop string restored."""
        url = _public_url(self.endpoint)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise AgentError(self._redact(f"reply from {url} has no choices: {str(payload)[:_BODY_EXCERPT]}"))
        choice = choices[0]
        raw_message = choice.get("message")
        message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
        content = message.get("content")
        if isinstance(content, list):  # some servers return content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str):
            raise AgentError(self._redact(f"reply from {url} has no text content (finish_reason="
                                          f"{choice.get('finish_reason')!r}): {str(choice)[:_BODY_EXCERPT]}"))
        if not self.stop:
            return content
        if choice.get("finish_reason") == "stop" and self.send_stop:
            return restore_stop(content, choice.get("stop_reason"), self.stop)
        return truncate_at_stop(content, self.stop)

    # -------------------------------------------------------------------------------------- acting

    def act(self, obs: Observation) -> str:
        return self._text(self._post(self.request_body(obs)))

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        if len(observations) != len(infos):
            raise ValueError(f"act_batch got {len(observations)} observations but {len(infos)} infos")
        if not observations:
            return []
        actions: list[str | None] = [None] * len(observations)
        errors: dict[int, AgentError] = {}
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(observations)),
                                thread_name_prefix="openai-agent") as pool:
            futures = [pool.submit(self.act, obs) for obs in observations]
            for index, future in enumerate(futures):
                try:
                    actions[index] = future.result()
                except AgentError as error:  # other exceptions (a malformed observation) propagate
                    errors[index] = error
        if errors:
            first = min(errors)
            raise AgentBatchError(f"{len(errors)} of {len(observations)} requests failed; episode {first}: "
                                  f"{errors[first]}", actions, errors)
        return [action for action in actions if action is not None]

    # ------------------------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatibleAgent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def card(self) -> dict[str, Any]:
        return {
            **super().card(),
            "backend": "openai-compatible",
            "base_url": _public_url(self.base_url),
            "model": self.model,
            "api_key_env": self.api_key_env,
            "generation": {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                           "seed": self.seed},
            "stop": list(self.stop),
            "send_stop": self.send_stop,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "concurrency": self.concurrency,
            "image_format": self.image_format,
            "extra_body": dict(self.extra_body),
        }
