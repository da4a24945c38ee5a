"""Clients of the served env: `ImageSearchVQAClient` (an `openenv-core` `EnvClient`, async, with
`.sync()`) and `RemoteImageSearchVQAEnv`, a `gymnasium.Env` that plays a remote session and returns
exactly what the local env returns, so research code swaps one for the other without changes:

    env = gym.make("ImageSearchVQA-v0", server="ws://127.0.0.1:8000")   # or RemoteImageSearchVQAEnv(url)

Why a Gymnasium env over the wire and not just the OpenEnv client: evaluation, vector envs and
trainers here are written against Gymnasium's `reset`/`step` contract (seeded `reset(seed=…)`,
five-tuple `step`, `info`); the remote env keeps that contract, spaces included (built from the
server's settings), and decodes images and `info` back to the same NumPy arrays and tuples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium import spaces
from openenv.core.client_types import StepResult
from openenv.core.env_client import EnvClient

from mmsearch_gym.envs.rules import resolve_rules
from mmsearch_gym.envs.spaces import ChatMessages, RGBImage, UnicodeText
from mmsearch_gym.integrations.openenv.models import (
    ImageSearchVQAAction,
    ImageSearchVQAObservation,
    ImageSearchVQAState,
)
from mmsearch_gym.integrations.openenv.wire import ImageDecoder, decode, decode_image

__all__ = ["ImageSearchVQAClient", "RemoteImageSearchVQAEnv", "RemoteEnvError"]


class RemoteEnvError(RuntimeError):
    """The server refused a request or could not be reached; the message names the server and why."""


class ImageSearchVQAClient(EnvClient[ImageSearchVQAAction, ImageSearchVQAObservation, ImageSearchVQAState]):
    """The typed OpenEnv client: `await client.reset(seed=0)`, `await client.step(ImageSearchVQAAction(turn=…))`."""

    async def connect(self) -> "ImageSearchVQAClient":
        """Connect, then let keepalive pings wait as long as a reply may: on a loaded machine a
        ping unanswered for websockets' default 20 s would drop a healthy session mid-episode."""
        await super().connect()
        if self._ws is not None:
            self._ws.ping_timeout = max(20.0, float(self._message_timeout))
        return self

    def _step_payload(self, action: ImageSearchVQAAction) -> dict[str, Any]:
        return action.model_dump(exclude={"metadata"})

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[ImageSearchVQAObservation]:
        fields = dict(payload.get("observation", {}))
        observation = ImageSearchVQAObservation(**fields, reward=payload.get("reward"),
                                                done=bool(payload.get("done", False)))
        return StepResult(observation=observation, reward=payload.get("reward"), done=observation.done)

    def _parse_state(self, payload: dict[str, Any]) -> ImageSearchVQAState:
        return ImageSearchVQAState(**payload)


def observation_from_wire(observation: ImageSearchVQAObservation,
                          decode_one: Callable[[str], Any] = decode_image) -> dict[str, Any]:
    """The local env's observation value: tuples of messages and of RGB uint8 arrays (each image
    decoded by `decode_one`: a session's `ImageDecoder` skips the images it has already seen)."""
    return {"images": tuple(decode_one(image) for image in observation.images),
            "messages": tuple(observation.messages)}


class RemoteImageSearchVQAEnv(gym.Env):
    """`ImageSearchVQA-v0` played on a server started by `mmsearch-gym serve`.

    Args:
        server: the server's URL (`ws://host:port`, `http://host:port`).
        connect_timeout_s, message_timeout_s: how long to wait for the connection and for each reply.
    The server decides the suite, search mode and limits; `reset(seed=…, options=…)` works as locally.
    """

    metadata = {"render_modes": []}

    def __init__(self, server: str, connect_timeout_s: float = 30.0, message_timeout_s: float = 120.0) -> None:
        self.server = server
        self._decode_image = ImageDecoder()  # each step resends the dialog's earlier images
        self._client = ImageSearchVQAClient(base_url=server, connect_timeout_s=connect_timeout_s,
                                            message_timeout_s=message_timeout_s).sync()
        try:
            self._client.connect()
            state = self._client.state()
        except Exception as error:  # noqa: BLE001 - connection failures all read the same to a user
            self._client.close()
            raise RemoteEnvError(f"cannot open a session on {server}: {error}") from None
        settings = dict(getattr(state, "settings", None) or {})
        self.settings = settings
        self.rules = resolve_rules(settings.get("rules", "mmsearch_r1"))
        """The server's rule set: evaluation records parse turns with it, as the server did."""
        max_turns = int(settings.get("max_turns", 3))
        max_images = 1 + int(settings.get("image_search_limit", 1)) * int(settings.get("top_k", 5))
        self.observation_space = spaces.Dict({
            "images": spaces.Sequence(RGBImage(), stack=False),
            "messages": ChatMessages(max_messages=1 + 2 * max_turns, max_images=max_images),
        })
        self.action_space = UnicodeText(max_length=10_000_000)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        request: dict[str, Any] = {}
        if seed is not None:
            request["seed"] = int(seed)
        if options is not None:
            request["options"] = dict(options)
        result = self._call("reset", lambda: self._client.reset(**request))
        observation = result.observation
        return observation_from_wire(observation, self._decode_image), decode(observation.info)

    def step(self, action: str) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        if not isinstance(action, str):
            raise TypeError(f"action must be the assistant turn as a str, got {type(action).__name__}")
        result = self._call("step", lambda: self._client.step(ImageSearchVQAAction(turn=action)))
        observation = result.observation
        terminated = bool(observation.done and not observation.truncated)
        reward = 0.0 if observation.reward is None else float(observation.reward)
        return (observation_from_wire(observation, self._decode_image), reward, terminated,
                bool(observation.truncated), decode(observation.info))

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            self._client = None
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing a dead connection is not an error
                pass

    def _call(self, what: str, request: Any) -> Any:
        if self._client is None:
            raise RemoteEnvError(f"{what}() on a closed RemoteImageSearchVQAEnv ({self.server})")
        try:
            return request()
        except RuntimeError as error:
            raise RemoteEnvError(f"{what}() on {self.server} failed: {error}") from None
