"""`ImageSearchVQA-v0` served through `openenv-core`'s own server (`create_app`, WebSocket sessions).

Why OpenEnv's server and not our own: trainers on other machines (TRL, verifiers, veRL, SkyRL) speak
its protocol, and re-implementing it would drift. We only supply the `Environment` subclass: one
`gym.make("ImageSearchVQA-v0", **env_kwargs)` per WebSocket session (so sessions never share episode
state), the wire models, and the session limits. `/ws` keeps one env per connection and carries
`reset`, `step`, `state` and `close`; HTTP `/reset` and `/step` are stateless (a fresh env per
request); `/health`, `/schema` and `/metadata` describe the server.

The dataset is resolved once and shared (samples are immutable), so a new session costs an env, not a
suite load. Each session opens its own search cache handle.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import ConcurrencyConfig, EnvironmentMetadata
from starlette.websockets import WebSocketDisconnect

from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.integrations.openenv.models import (
    ImageSearchVQAAction,
    ImageSearchVQAObservation,
    ImageSearchVQAState,
)
from mmsearch_gym.integrations.openenv.wire import ImageEncoder, encode
from mmsearch_gym.registration import ENV_ID

__all__ = ["ImageSearchVQAServerEnv", "make_app", "serve", "SPACE_SETTINGS"]

SPACE_SETTINGS = ("max_turns", "image_search_limit", "text_search_limit", "top_k", "max_action_chars")
"""Env settings sent in `state` (with the rule set's name) so that a remote client builds the same
observation space, parses turns with the same rules, and an evaluation can check it plays what it records."""


class ImageSearchVQAServerEnv(Environment[ImageSearchVQAAction, ImageSearchVQAObservation, ImageSearchVQAState]):
    """One session's environment: a wrapped `gym.make` env (its order checks included: a step before
    reset is refused with the protocol's error reply)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self._env = gym.make(ENV_ID, **(env_kwargs or {}))
        self._episode_id: str | None = None
        self._steps = 0
        self._sample_id: str | None = None
        self._done = False
        self._encode_image = ImageEncoder()  # later steps resend the dialog's earlier images

    def reset(self, seed: int | None = None, episode_id: str | None = None,
              options: dict[str, Any] | None = None, **kwargs: Any) -> ImageSearchVQAObservation:
        if kwargs:
            raise ValueError(f"unknown reset field(s) {sorted(kwargs)}; use seed, episode_id or options")
        if seed is not None:
            require_int("seed", seed, low=0)
        obs, info = self._env.reset(seed=seed, options=options)
        self._episode_id, self._steps, self._done = episode_id, 0, False
        self._sample_id = info.get("sample_id")
        return self._to_wire(obs, None, False, False, info)

    def step(self, action: ImageSearchVQAAction, timeout_s: float | None = None,
             **kwargs: Any) -> ImageSearchVQAObservation:
        obs, reward, terminated, truncated, info = self._env.step(action.turn)
        self._steps += 1
        self._done = bool(terminated or truncated)
        return self._to_wire(obs, float(reward), bool(terminated), bool(truncated), info)

    @property
    def state(self) -> ImageSearchVQAState:
        env = self._env.unwrapped
        settings: dict[str, Any] = {name: getattr(env, name) for name in SPACE_SETTINGS}
        settings["rules"] = env.rules.name
        return ImageSearchVQAState(episode_id=self._episode_id, step_count=self._steps,
                                   sample_id=self._sample_id, done=self._done, settings=settings)

    def get_metadata(self) -> EnvironmentMetadata:
        from mmsearch_gym import __version__

        return EnvironmentMetadata(
            name=ENV_ID, version=__version__,
            description="Multimodal search-augmented VQA (MMSearch-R1's task): the action is the assistant "
                        "turn; image search, text search and answers follow MMSearch-R1's grammar.")

    def close(self) -> None:
        self._env.close()

    def _to_wire(self, obs: dict[str, Any], reward: float | None, terminated: bool, truncated: bool,
                 info: dict[str, Any]) -> ImageSearchVQAObservation:
        return ImageSearchVQAObservation(
            messages=[dict(message) for message in obs["messages"]],
            images=[self._encode_image(image) for image in obs["images"]],
            reward=reward, done=terminated or truncated, truncated=truncated, info=encode(info))


def shared_env_kwargs(env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Resolve the dataset once so that every session shares the same immutable samples."""
    from mmsearch_gym.data.suites import resolve_dataset, suite_cache_bundle

    kwargs = dict(env_kwargs)
    dataset = kwargs.get("dataset")
    if not isinstance(dataset, (list, tuple)):
        search = kwargs.get("search")
        if (search is None or isinstance(search, str)) and kwargs.get("cache_path") is None:
            bundle = suite_cache_bundle(dataset)
            if bundle is not None:  # the named suite's own recording, as gym.make would pick it
                kwargs["cache_path"] = str(bundle)
        kwargs["dataset"] = resolve_dataset(dataset)
    return kwargs


class QuietClientDisconnect:
    """ASGI middleware: a WebSocket whose client already left ends quietly instead of with a traceback.

    Why: openenv-core's `/ws` handler closes the socket in a `finally` that catches only
    `RuntimeError`, but Starlette raises `WebSocketDisconnect` when the client closed first, which is
    what every well-behaved client does after its `close` message. uvicorn then logged a 4 kB
    "Exception in ASGI application" traceback per session: noise that hides real errors, and a server
    whose stderr is a pipe nobody drains blocks on the write, with its event loop, once the pipe is
    full (about 16 sessions). Only the client's own disconnect is silenced; any other error still
    reaches uvicorn's log."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except WebSocketDisconnect:
            pass


def make_app(env_kwargs: dict[str, Any] | None = None, *, max_sessions: int = 16,
             idle_timeout_s: float | None = 300.0) -> Any:
    """The FastAPI app: `openenv-core`'s `create_app` over `ImageSearchVQAServerEnv`.

    `max_sessions` bounds concurrent WebSocket sessions; a session idle for `idle_timeout_s` seconds
    (a client that vanished without closing) is reaped so its slot frees."""
    require_int("max_sessions", max_sessions, low=1)
    if idle_timeout_s is not None:
        require_number("idle_timeout_s", idle_timeout_s, low=0.0, low_inclusive=False)
    kwargs = shared_env_kwargs(env_kwargs or {})
    ImageSearchVQAServerEnv(kwargs).close()  # bad settings fail here, once, with the env's own message
    factory = functools.partial(ImageSearchVQAServerEnv, kwargs)
    app = create_app(factory, ImageSearchVQAAction, ImageSearchVQAObservation, env_name="image_search_vqa",
                     concurrency_config=ConcurrencyConfig(max_concurrent_envs=max_sessions,
                                                          session_timeout=idle_timeout_s))
    app.add_middleware(QuietClientDisconnect)
    return app


def serve(env_kwargs: dict[str, Any] | None = None, *, host: str = "127.0.0.1", port: int = 8000,
          max_sessions: int = 16, idle_timeout_s: float | None = 300.0, log_level: str = "warning",
          ws_compression: bool = False) -> None:
    """Run the server with uvicorn until interrupted.

    `ws_compression` turns on WebSocket per-message deflate. It is off because the payload is mostly
    base64 PNG, which deflate shrinks only by a quarter, while compressing runs on the server's one
    event loop: with it on, the loop spent 5.3 ms of CPU per oracle episode (1.7 ms without it) and a
    single client's episode took 1.5x as long on loopback (`perf/serve_throughput.py`). Turn it on
    for a slow network link."""
    import uvicorn

    app = make_app(env_kwargs, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s)
    uvicorn.run(app, host=host, port=port, log_level=log_level, ws_max_size=16 * 1024 * 1024,
                ws_per_message_deflate=ws_compression,
                ws_ping_interval=20.0, ws_ping_timeout=120.0)  # a busy client is not a dead one
