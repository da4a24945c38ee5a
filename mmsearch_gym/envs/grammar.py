"""MMSearch-R1's action grammar: parse one assistant turn, and score the format of a whole trajectory.

Every function here is linear in the length of its input: only `str.strip`, `endswith`, `rfind`,
`find` and `count`, never a backtracking regex (an end-anchored `<text_search>.*</text_search>$`
is quadratic on adversarial input; see docs/measured-floors.md). Nothing here raises on
anything a model can write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

ActionKind = Literal["answer", "image_search", "text_search", "invalid"]

REASON_OPEN, REASON_CLOSE = "<reason>", "</reason>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
IMAGE_SEARCH_OPEN, IMAGE_SEARCH_CLOSE = "<search>", "</search>"
TEXT_SEARCH_OPEN, TEXT_SEARCH_CLOSE = "<text_search>", "</text_search>"
IMAGE_PLACEHOLDER = "<img>"
IMAGE_SEARCH_ACTION = f"{IMAGE_SEARCH_OPEN}{IMAGE_PLACEHOLDER}{IMAGE_SEARCH_CLOSE}"

_ACTION_TAGS: dict[str, tuple[str, str]] = {
    "answer": (ANSWER_OPEN, ANSWER_CLOSE),
    "image_search": (IMAGE_SEARCH_OPEN, IMAGE_SEARCH_CLOSE),
    "text_search": (TEXT_SEARCH_OPEN, TEXT_SEARCH_CLOSE),
}


@dataclass(frozen=True)
class Action:
    """One parsed assistant turn.

    kind: `answer` (the turn ends with `</answer>`), `image_search` (ends with
    `<search><img></search>`), `text_search` (ends with `<text_search>query</text_search>`), or
    `invalid` (anything else; `reason` says why).
    answer: the content of the last `<answer>…</answer>` anywhere in the turn, for any kind, because a
    turn that ends the episode is scored from it even when it is malformed (DESIGN §2).
    query: the text-search query (stripped), for `text_search`.
    """

    kind: ActionKind
    answer: str | None = None
    query: str | None = None
    reason: str | None = None

    @property
    def is_search(self) -> bool:
        return self.kind in ("image_search", "text_search")


def last_answer(text: str) -> str | None:
    """Content of the last complete `<answer>…</answer>` in `text`, stripped; None when there is none."""
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
    """Parse one assistant turn into an `Action`. Never raises for a string input."""
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
    if kind not in _ACTION_TAGS:
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


# The only trajectories with a perfect format (DESIGN §3).
VALID_SHAPES: frozenset[tuple[ActionKind, ...]] = frozenset({
    ("answer",),
    ("image_search", "answer"),
    ("text_search", "answer"),
    ("image_search", "text_search", "answer"),
})


def format_score(turns: Sequence[str]) -> int:
    """1 when the whole trajectory of assistant turns has one of the four valid shapes and every turn
    is well formed (`turn_is_well_formed`); else 0."""
    if isinstance(turns, str):
        raise TypeError("format_score takes the sequence of assistant turns, not a single string")
    kinds = tuple(parse_action(turn).kind for turn in turns)
    if kinds not in VALID_SHAPES:
        return 0
    return int(all(turn_is_well_formed(turn, kind) for turn, kind in zip(turns, kinds)))
