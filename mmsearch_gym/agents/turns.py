"""Small helpers to read an observation the way scripted agents need it; the turn builders live in
`mmsearch_gym.envs.grammar` (re-exported here), so trainers can use them without importing agents."""

from __future__ import annotations

from typing import Any, Mapping

from mmsearch_gym.agents.base import Observation
from mmsearch_gym.agents.messages import assistant_turns  # noqa: F401 - re-exported for scripted agents
from mmsearch_gym.envs.grammar import answer_turn, image_search_turn, text_search_turn

__all__ = ["answer_turn", "assistant_turns", "image_search_turn", "last_user_text", "message_text", "text_search_turn"]


def message_text(message: Mapping[str, Any]) -> str:
    return "".join(part["text"] for part in message["content"] if part["type"] == "text")


def last_user_text(obs: Observation) -> str:
    for message in reversed(obs["messages"]):
        if message["role"] == "user":
            return message_text(message)
    return ""

