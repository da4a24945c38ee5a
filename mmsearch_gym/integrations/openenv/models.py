"""The OpenEnv wire models of `ImageSearchVQA-v0` (pydantic, as `openenv-core` requires).

The action is the assistant turn, exactly what `env.step` takes. The observation carries what a
client needs to rebuild the local env's return values: the chat messages in the HF/OpenAI multimodal
format (image parts index into `images`), the images as base64 PNG (lossless), the reward, `done`,
`truncated`, and `info` (encoded by `wire.encode`, so tuples and arrays come back as they were).
"""

from __future__ import annotations

from typing import Any

from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

__all__ = ["ImageSearchVQAAction", "ImageSearchVQAObservation", "ImageSearchVQAState", "MAX_ACTION_CHARS_ON_WIRE"]

MAX_ACTION_CHARS_ON_WIRE = 1_000_000
"""Longer turns are refused by validation (the protocol's error reply) before they reach the env; the
env itself cuts turns to its own `max_action_chars` (16k by default) as a generation limit would."""


class ImageSearchVQAAction(Action):
    """One assistant turn, e.g. `<reason>…</reason><search><img></search>`."""

    turn: str = Field(..., max_length=MAX_ACTION_CHARS_ON_WIRE, description="The model's whole assistant turn.")


class ImageSearchVQAObservation(Observation):
    """The dialog after a reset or a step."""

    messages: list[dict[str, Any]] = Field(default_factory=list,
                                           description="Chat messages; image parts index into `images`.")
    images: list[str] = Field(default_factory=list,
                              description="Question image then search thumbnails, as base64 PNG.")
    truncated: bool = Field(default=False, description="Gymnasium's `truncated` flag.")
    info: dict[str, Any] = Field(default_factory=dict, description="The env's `info`, wire-encoded.")


class ImageSearchVQAState(State):
    """Session state; also carries the env settings a client needs to build identical spaces."""

    sample_id: str | None = Field(default=None, description="The current episode's sample, if any.")
    done: bool = Field(default=False, description="Whether the current episode has ended.")
