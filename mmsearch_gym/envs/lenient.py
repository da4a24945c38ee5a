"""The `lenient` rule set: whitespace-tolerant triggers for models not trained on MMSearch-R1's code.

Opt in with ``gym.make("ImageSearchVQA-v0", rules="lenient")``. Differences from the default
(`mmsearch_gym.envs.grammar`, MMSearch-R1's exact rules):

- triggers read the *stripped* turn: trailing spaces, tabs or newlines after an action still act,
  and ``<search> <img> </search>`` (spaces inside) is an image search;
- a text query is the text after the last ``<text_search>`` before the final closing tag, stripped,
  newlines allowed; a whitespace-only query ends the episode;
- the answer is the content between the last ``</answer>`` and the ``<answer>`` before it;
- format: only whitespace may separate ``</reason>`` from the action, no other action tag (nor a
  stray ``<search>``, ``<img>`` or ``<answer>``) may appear in the turn;
- the search penalty counts the searches the environment executed.

Linear-time like the default rules: only ``strip``, ``endswith``, ``rfind``, ``find`` and ``count``.

>>> parse_action("<reason>x</reason><search> <img> </search>  ").kind
'image_search'
>>> format_score(["<reason>Known.</reason> So: <answer>Paris</answer>"])
0
"""

from __future__ import annotations

from typing import Sequence

from mmsearch_gym.envs.grammar import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    IMAGE_PLACEHOLDER,
    IMAGE_SEARCH_ACTION,
    IMAGE_SEARCH_CLOSE,
    IMAGE_SEARCH_OPEN,
    REASON_CLOSE,
    REASON_OPEN,
    TEXT_SEARCH_CLOSE,
    TEXT_SEARCH_OPEN,
    VALID_SHAPES,
    Action,
    ActionKind,
)

_ACTION_TAGS: dict[str, tuple[str, str]] = {
    "answer": (ANSWER_OPEN, ANSWER_CLOSE),
    "image_search": (IMAGE_SEARCH_OPEN, IMAGE_SEARCH_CLOSE),
    "text_search": (TEXT_SEARCH_OPEN, TEXT_SEARCH_CLOSE),
}


def last_answer(text: str) -> str | None:
    """Content of the last complete `<answer>…</answer>` (the last closing tag and the opening tag
    nearest before it), stripped; None when there is none."""
    close = text.rfind(ANSWER_CLOSE)
    if close < 0:
        return None
    open_ = text.rfind(ANSWER_OPEN, 0, close)
    if open_ < 0:
        return None
    return text[open_ + len(ANSWER_OPEN):close].strip()


def _tagged_tail(text: str, open_tag: str, close_tag: str) -> str | None:
    """If `text` (already stripped) ends with `close_tag`, the content after the last `open_tag`
    before it; None when the turn does not end with this tag pair."""
    if not text.endswith(close_tag):
        return None
    end = len(text) - len(close_tag)
    open_ = text.rfind(open_tag, 0, end)
    if open_ < 0:
        return None
    return text[open_ + len(open_tag):end]


def parse_action(text: str) -> Action:
    """Parse one assistant turn with the tolerant triggers. Never raises."""
    if not isinstance(text, str):
        return Action("invalid", reason=f"action must be a string, got {type(text).__name__}")
    answer = last_answer(text)
    stripped = text.strip()
    if not stripped:
        return Action("invalid", reason="empty turn")

    inner = _tagged_tail(stripped, IMAGE_SEARCH_OPEN, IMAGE_SEARCH_CLOSE)
    if inner is not None:
        if inner.strip() == IMAGE_PLACEHOLDER:
            return Action("image_search", answer=answer)
        return Action("invalid", answer=answer,
                      reason=f"image search must be written {IMAGE_SEARCH_ACTION}")

    inner = _tagged_tail(stripped, TEXT_SEARCH_OPEN, TEXT_SEARCH_CLOSE)
    if inner is not None:
        query = inner.strip()
        if query:
            return Action("text_search", answer=answer, query=query)
        return Action("invalid", answer=answer, reason="empty text search query")

    if stripped.endswith(ANSWER_CLOSE) and answer is not None:
        return Action("answer", answer=answer)
    if answer is not None:
        return Action("invalid", answer=answer, reason="text after the final </answer>")
    return Action("invalid", reason="no <answer>, <search> or <text_search> action at the end of the turn")


def turn_is_well_formed(text: str, kind: ActionKind) -> bool:
    """True when the turn is exactly `<reason>…</reason>` followed by one action of `kind` that ends
    the turn: one reason block, one action, no other action tag, only whitespace between them."""
    if kind not in _ACTION_TAGS or not isinstance(text, str):
        return False
    stripped = text.strip()
    if not stripped.startswith(REASON_OPEN):
        return False
    if stripped.count(REASON_OPEN) != 1 or stripped.count(REASON_CLOSE) != 1:
        return False
    for other_kind, (open_tag, close_tag) in _ACTION_TAGS.items():
        expected = 1 if other_kind == kind else 0
        if stripped.count(open_tag) != expected or stripped.count(close_tag) != expected:
            return False
    open_tag, _ = _ACTION_TAGS[kind]
    reason_end = stripped.find(REASON_CLOSE)
    action_start = stripped.find(open_tag)
    if action_start < reason_end or stripped[reason_end + len(REASON_CLOSE):action_start].strip():
        return False
    if kind == "image_search" and stripped.count(IMAGE_PLACEHOLDER) != 1:
        return False
    return parse_action(stripped).kind == kind


def format_score(turns: Sequence[str]) -> int:
    """1 when the whole trajectory has one of the four valid shapes and every turn is well formed
    (`turn_is_well_formed`); else 0."""
    if isinstance(turns, str):
        raise TypeError("format_score takes the sequence of assistant turns, not a single string")
    kinds = tuple(parse_action(turn).kind for turn in turns)
    if kinds not in VALID_SHAPES:
        return 0
    return int(all(turn_is_well_formed(turn, kind) for turn, kind in zip(turns, kinds)))


def search_count(turns: Sequence[str], executed: int = 0) -> int:
    """The searches the penalty counts: those the environment executed."""
    return executed
