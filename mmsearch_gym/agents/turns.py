"""Small helpers to read an observation the way scripted agents need it."""

from __future__ import annotations

from mmsearch_gym.agents.base import Observation
from mmsearch_gym.agents.messages import assistant_turns  # noqa: F401 - re-exported for scripted agents
from mmsearch_gym.envs.grammar import ANSWER_CLOSE, ANSWER_OPEN, IMAGE_SEARCH_ACTION, TEXT_SEARCH_CLOSE, TEXT_SEARCH_OPEN


def message_text(message: dict) -> str:
    return "".join(part["text"] for part in message["content"] if part["type"] == "text")


def last_user_text(obs: Observation) -> str:
    for message in reversed(obs["messages"]):
        if message["role"] == "user":
            return message_text(message)
    return ""


def answer_turn(reason: str, answer: str) -> str:
    return f"<reason>{reason}</reason>{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def image_search_turn(reason: str) -> str:
    return f"<reason>{reason}</reason>{IMAGE_SEARCH_ACTION}"


def text_search_turn(reason: str, query: str) -> str:
    return f"<reason>{reason}</reason>{TEXT_SEARCH_OPEN}{query}{TEXT_SEARCH_CLOSE}"
