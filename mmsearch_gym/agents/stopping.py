"""Where a model's turn ends: right after the first closing action tag it writes.

Why: MMSearch-R1's turn ends with exactly one action (`</answer>`, `<search><img></search>` or
`<text_search>…</text_search>`); anything a model writes after that tag makes the turn malformed
(the grammar rejects text after the final action) and costs generation time. Every model agent
stops generating at these strings and cuts its text just after the first one.

Pure Python (no torch): the HF agent wraps `StopChecker` in a `StoppingCriteria`, the vLLM agent
passes the strings to `SamplingParams`, and the OpenAI agent sends them as `stop` and restores the
tag the server strips (`restore_stop`).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from mmsearch_gym.envs.grammar import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    IMAGE_SEARCH_CLOSE,
    IMAGE_SEARCH_OPEN,
    TEXT_SEARCH_CLOSE,
    TEXT_SEARCH_OPEN,
)

ACTION_STOP_STRINGS: tuple[str, ...] = (ANSWER_CLOSE, IMAGE_SEARCH_CLOSE, TEXT_SEARCH_CLOSE)
"""`</answer>`, `</search>`, `</text_search>`: the closing tags that end an action."""

_OPENER_FOR_CLOSE = {ANSWER_CLOSE: ANSWER_OPEN, IMAGE_SEARCH_CLOSE: IMAGE_SEARCH_OPEN,
                     TEXT_SEARCH_CLOSE: TEXT_SEARCH_OPEN}


def check_stop_strings(stop: Iterable[str] | None) -> tuple[str, ...]:
    """Validate and normalise a stop-string argument (None: no stop strings)."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        raise TypeError(f"stop must be a sequence of strings, not the single string {stop!r}")
    strings = tuple(stop)
    for item in strings:
        if not isinstance(item, str) or not item:
            raise ValueError(f"every stop string must be a non-empty str, got {item!r} in {strings!r}")
    return strings


def find_stop(text: str, stop: Sequence[str]) -> tuple[int, str] | None:
    """(end offset, stop string) of the stop string that ends first in `text`, or None.

    "Ends first" so that a turn is cut at the earliest point where generation would have stopped.
    """
    best: tuple[int, str] | None = None
    for item in stop:
        position = text.find(item)
        if position >= 0:
            end = position + len(item)
            if best is None or end < best[0]:
                best = (end, item)
    return best


def truncate_at_stop(text: str, stop: Sequence[str] = ACTION_STOP_STRINGS) -> str:
    """`text` cut just after the first stop string (kept); unchanged when none occurs.

    Needed even when the engine stops by itself: a token can run past the end of the stop string
    (e.g. `</answer>\\n` as one token), and HF stops a batch row only at token boundaries.
    """
    found = find_stop(text, stop)
    return text if found is None else text[: found[0]]


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


class StopChecker:
    """Incremental check "has the generated text reached a stop string?" for token-by-token engines.

    Only the tail of the decoded text can contain a new match, so callers decode just the last
    `tail_tokens` tokens of each row at each step (a stop string of n characters spans at most n
    tokens, plus partial UTF-8 bytes on each side).
    """

    def __init__(self, stop: Sequence[str] = ACTION_STOP_STRINGS) -> None:
        self.stop = check_stop_strings(stop)
        self.tail_tokens = max((len(item) for item in self.stop), default=0) + 2

    def hit(self, decoded_tail: str) -> bool:
        return any(item in decoded_tail for item in self.stop)
