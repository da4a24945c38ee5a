"""Stop strings: the closing action tags after which a model agent stops writing.

Why: MMSearch-R1's turn ends with exactly one action (`</answer>`, `<search><img></search>` or
`<text_search>…</text_search>`); anything a model writes after that tag makes the turn malformed
(the grammar rejects text after the final action) and costs generation time. Every model agent
stops generating at these strings and cuts its text just after the first one.

The generic machinery (validation, `StopChecker`, the transformers stopping criterion) lives in
`mmsearch_gym.hf.stopping`, shared with the trainers; this module fixes the agents' default (the
grammar's closing tags) and adds `restore_stop` for OpenAI-compatible servers. The HF agent wraps
`StopChecker` in a `StoppingCriteria`, the vLLM agent passes the strings to `SamplingParams`, and
the OpenAI agent sends them as `stop` and restores the tag the server strips.
"""

from __future__ import annotations

from typing import Sequence

from mmsearch_gym.envs.grammar import (
    ACTION_CLOSE_TAGS,
    ANSWER_CLOSE,
    ANSWER_OPEN,
    IMAGE_SEARCH_CLOSE,
    IMAGE_SEARCH_OPEN,
    TEXT_SEARCH_CLOSE,
    TEXT_SEARCH_OPEN,
)
from mmsearch_gym.hf import stopping as _hf
from mmsearch_gym.hf.stopping import check_stop_strings, find_stop

__all__ = ["ACTION_STOP_STRINGS", "StopChecker", "check_stop_strings", "find_stop", "restore_stop",
           "truncate_at_stop"]

ACTION_STOP_STRINGS: tuple[str, ...] = ACTION_CLOSE_TAGS
"""`</answer>`, `</search>`, `</text_search>`: the closing tags that end an action."""

_OPENER_FOR_CLOSE = {ANSWER_CLOSE: ANSWER_OPEN, IMAGE_SEARCH_CLOSE: IMAGE_SEARCH_OPEN,
                     TEXT_SEARCH_CLOSE: TEXT_SEARCH_OPEN}


def truncate_at_stop(text: str, stop: Sequence[str] = ACTION_STOP_STRINGS) -> str:
    """`text` cut just after the first stop string (default: the action closing tags)."""
    return _hf.truncate_at_stop(text, stop)


class StopChecker(_hf.StopChecker):
    """`hf.stopping.StopChecker` whose default stop strings are the action closing tags."""

    def __init__(self, stop: Sequence[str] = ACTION_STOP_STRINGS) -> None:
        super().__init__(stop)


def restore_stop(text: str, stop_reason: object = None, stop: Sequence[str] = ACTION_STOP_STRINGS) -> str:
    """Put back the stop string that an OpenAI-compatible server removed from a stopped reply.

    The OpenAI wire format excludes the matched stop sequence from the text. vLLM's server reports
    it as `stop_reason`; other servers don't, so when `stop_reason` is not one of `stop` the closing
    tag is inferred: the last action opener (`<answer>`, `<search>`, `<text_search>`) that is not
    closed after it gets its closing tag. Call this only for replies whose `finish_reason` is "stop".
    """
    if find_stop(text, stop) is not None:
        return truncate_at_stop(text, stop)
    if isinstance(stop_reason, str) and stop_reason in stop:
        return text + stop_reason
    last: tuple[int, str] | None = None
    for close, opener in _OPENER_FOR_CLOSE.items():
        if close not in stop:
            continue
        position = text.rfind(opener)
        if position >= 0 and close not in text[position:] and (last is None or position > last[0]):
            last = (position, close)
    return text if last is None else text + last[1]
