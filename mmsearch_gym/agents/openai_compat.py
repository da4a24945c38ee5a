"""`OpenAICompatibleAgent`: any server speaking OpenAI's chat-completions wire format.

vLLM's and SGLang's servers, `transformers serve`, hosted APIs: one agent covers them all. Why the
details:
- Images travel as base64 PNG `data:` URLs (`messages.to_openai_messages`): lossless and needing no
  file server, so the model sees exactly the env's pixels.
- Requests go through `mmsearch_gym.net.chat.ChatClient`, the client the judge and the summarizer
  share: transient failures (408, 409, 425, 429, 5xx, connection errors, timeouts) are retried with
  exponential backoff, waiting at least a server's `Retry-After`; anything else, or retries running
  out, raises `AgentError` naming the public URL, the status and the start of the reply, so the
  evaluator can record the failure for that episode and go on with the others.
- `act_batch` sends up to `concurrency` requests at once from a thread pool (servers batch
  concurrent requests themselves); a failure of some episodes raises `AgentBatchError`, which
  carries the other episodes' actions.
- The API key is read from an environment variable (or given), sent only in the Authorization
  header, and never appears in `card()`, `repr()` or error messages (`net.secrets.redact`, as for
  every other HTTP client of the package; `user:key@` in `base_url` is redacted too).
- Servers drop the matched stop string from the reply; `stopping.restore_stop` puts it back so the
  env sees the whole action tag.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

from mmsearch_gym.agents.base import AgentBatchError, AgentError, AgentBase, Observation
from mmsearch_gym.agents.messages import IMAGE_FORMATS, to_openai_messages
from mmsearch_gym.agents.stopping import ACTION_STOP_STRINGS, check_stop_strings, restore_stop, truncate_at_stop
from mmsearch_gym.checks import require_bool, require_int, require_number
from mmsearch_gym.net.chat import ChatClient, message_text
from mmsearch_gym.net.fetch import check_http_url
from mmsearch_gym.net.retry import HttpError, RetryPolicy
from mmsearch_gym.net.secrets import public_url, redact, redacted_excerpt

_BODY_EXCERPT = 500


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
        timeout: seconds for connecting, for each read, and for the whole reply (per attempt).
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
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(api_key_env, str) or not api_key_env:
            raise ValueError(f"api_key_env must be an environment variable name, got {api_key_env!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise ValueError(f"api_key must be a string or None, got a {type(api_key).__name__}")
        self.temperature = require_number("temperature", temperature, low=0.0)
        self.max_tokens = require_int("max_tokens", max_tokens, low=1)
        self.seed = None if seed is None else require_int("seed", seed, low=0)
        self.timeout = require_number("timeout", timeout, low=0.0, low_inclusive=False)
        self.max_retries = require_int("max_retries", max_retries, low=0)
        self.backoff_initial = require_number("backoff_initial", backoff_initial, low=0.0)
        self.backoff_max = require_number("backoff_max", backoff_max, low=0.0)
        self.concurrency = require_int("concurrency", concurrency, low=1)
        self.top_p = None if top_p is None else require_number("top_p", top_p, low=0.0, high=1.0,
                                                                low_inclusive=False)
        if not isinstance(image_format, str) or image_format.upper() not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
        if extra_body is not None and not isinstance(extra_body, Mapping):
            raise ValueError(f"extra_body must be a mapping of JSON fields, got {type(extra_body).__name__}")
        self.send_stop = require_bool("send_stop", send_stop)
        self.stop = check_stop_strings(stop)
        try:
            check_http_url(base_url, "base_url")
        except ValueError:
            raise ValueError(f"base_url must be an http(s) URL such as 'http://127.0.0.1:8000/v1', got "
                             f"{public_url(base_url) if isinstance(base_url, str) else base_url!r}") from None
        self._chat = ChatClient(  # api_key="" means: send no key (and do not read the environment)
            base_url, api_key=api_key or None, api_key_env=None if api_key == "" else api_key_env,
            timeout=self.timeout, concurrency=self.concurrency,
            retry=RetryPolicy(max_attempts=self.max_retries + 1, initial_wait_s=self.backoff_initial,
                              max_wait_s=self.backoff_max, jitter_s=0.0))
        self.base_url = public_url(base_url.rstrip("/"))
        """The API root as shown in cards and errors (no user info, query or fragment)."""
        self.endpoint = self._chat.endpoint
        self.model = model
        self.api_key_env = api_key_env
        self.image_format = image_format.upper()
        self.extra_body = dict(extra_body or {})
        if name is not None:
            self.name = name

    def __repr__(self) -> str:
        return f"OpenAICompatibleAgent(base_url={self.base_url!r}, model={self.model!r})"

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

    def _post(self, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._chat.complete(body)
        except HttpError as error:
            raise AgentError(str(error)) from None

    def _text(self, payload: Mapping[str, Any]) -> str:
        """The assistant text of a reply, with the stripped stop string restored."""
        url = self.endpoint
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise AgentError(f"reply from {url} has no choices: {redacted_excerpt(payload, _BODY_EXCERPT)}")
        choice = choices[0]
        raw_message = choice.get("message")
        message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
        content = message_text(message.get("content"))  # some servers return content parts
        if content is None:
            raise AgentError(redact(f"reply from {url} has no text content (finish_reason="
                                    f"{choice.get('finish_reason')!r}): {redacted_excerpt(choice, _BODY_EXCERPT)}"))
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
        self._chat.close()

    def __enter__(self) -> OpenAICompatibleAgent:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def card(self) -> dict[str, Any]:
        return {
            **super().card(),
            "backend": "openai-compatible",
            "base_url": self.base_url,
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
