"""MMSearch-R1's action grammar, exactly as its released code applies it (the default rule set).

The official rollout generates each turn until the end-of-turn token (it sets no stop strings, so
text after an action tag can exist) and then reads the raw turn:

- image search when the turn ends with ``<search><img></search>`` (Python's ``$``: one final
  ``"\\n"`` may follow);
- text search when it ends with ``<text_search>…</text_search>`` with no newline inside (no
  DOTALL); the query is the last non-greedy ``<text_search>(.*?)</text_search>`` match, unstripped.
  A whitespace-only query is searched; an empty one ends the episode;
- anything else ends the episode and is scored: the answer is the last non-greedy
  ``<answer>(.*?)</answer>`` match (DOTALL) of the last turn, stripped.

The format of a turn (stripped) is ``^<reason>.*</reason>.*ACTION$`` (DOTALL) with exactly one
``<reason>`` and one ``</reason>`` (and in an answer turn one ``<answer>`` and one ``</answer>``);
only the whole string ``<search><img></search>`` and the ``<text_search>`` tags are forbidden in
the other kinds of turn. The search count that the penalty uses comes from the strings of the turns.

Why hand-written scanners instead of those regexes: end-anchored ``.*…$`` patterns and
``(.*?)`` searches over many open tags backtrack quadratically on adversarial input
(docs/measured-floors.md, "Action parser"). Every function here is linear in its input (only
``find``/``rfind``/``endswith``/``count`` over disjoint spans) and never raises on what a model writes.
The tolerant rule set that also accepts spaced tags lives in `mmsearch_gym.envs.lenient`; the two
are chosen by name through `mmsearch_gym.envs.rules`.

>>> parse_action("<reason>It is a tower.</reason><text_search>Eiffel Tower height</text_search>")
Action(kind='text_search', answer=None, query='Eiffel Tower height', reason=None)
>>> parse_action("<reason>x</reason><search> <img> </search>").kind   # spaced: no search
'invalid'
>>> last_answer("<answer> Rome </answer> or <answer>Paris</answer>")
'Paris'
>>> format_score(["<reason>Known.</reason> So: <answer>Paris</answer>"])
1
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
ACTION_CLOSE_TAGS: tuple[str, ...] = (ANSWER_CLOSE, IMAGE_SEARCH_CLOSE, TEXT_SEARCH_CLOSE)
"""The closing tags that end an action: model back ends stop generating at the first one."""

# The only trajectories with a perfect format (DESIGN §3), shared by every rule set.
VALID_SHAPES: frozenset[tuple[ActionKind, ...]] = frozenset({
    ("answer",),
    ("image_search", "answer"),
    ("text_search", "answer"),
    ("image_search", "text_search", "answer"),
})


@dataclass(frozen=True)
class Action:
    """One parsed assistant turn.

    kind: `image_search` or `text_search` when the turn triggers that search; otherwise the turn
    ends the episode: `answer` when it ends with `</answer>` and holds an answer, else `invalid`
    (`reason` says why; informative only, the reward comes from `answer` and the format score).
    answer: the answer the turn would be scored with (rule-set specific), for any kind.
    query: the text-search query, for `text_search`.
    """

    kind: ActionKind
    answer: str | None = None
    query: str | None = None
    reason: str | None = None

    @property
    def is_search(self) -> bool:
        return self.kind in ("image_search", "text_search")


# ---------------------------------------------------------------------------- writing a turn
# Well-formed turns under every rule set; scripted agents and trainers build their turns with these.

def answer_turn(reason: str, answer: str) -> str:
    return f"{REASON_OPEN}{reason}{REASON_CLOSE}{ANSWER_OPEN}{answer}{ANSWER_CLOSE}"


def image_search_turn(reason: str) -> str:
    return f"{REASON_OPEN}{reason}{REASON_CLOSE}{IMAGE_SEARCH_ACTION}"


def text_search_turn(reason: str, query: str) -> str:
    """A text-search turn; the query must hold no newline (the official trigger reads one line):
    pass it through `one_line_query` when it comes from elsewhere."""
    return f"{REASON_OPEN}{reason}{REASON_CLOSE}{TEXT_SEARCH_OPEN}{query}{TEXT_SEARCH_CLOSE}"


GRAMMAR_TAGS: tuple[str, ...] = (REASON_OPEN, REASON_CLOSE, ANSWER_OPEN, ANSWER_CLOSE, TEXT_SEARCH_OPEN,
                                 TEXT_SEARCH_CLOSE, IMAGE_SEARCH_OPEN, IMAGE_SEARCH_CLOSE, IMAGE_PLACEHOLDER)


def one_line_query(query: str) -> str:
    """`query` as a text-search turn can carry it and still trigger the search: the grammar's tags
    removed (each becomes a space, so no tag can re-form) and every run of whitespace, newlines
    included, folded into one space; "" when nothing is left (the official rules end an episode on
    an empty query, so a caller must not send one).

    >>> one_line_query("  Eiffel Tower\\n height </text_search><answer>x")
    'Eiffel Tower height x'
    """
    for tag in GRAMMAR_TAGS:
        query = query.replace(tag, " ")
    return " ".join(query.split())


# ------------------------------------------------------------------------------ linear scanners

def last_lazy_match(text: str, open_tag: str, close_tag: str, *, single_line: bool = False) -> str | None:
    """The group of the last match that ``re.finditer(open(.*?)close)`` would yield (DOTALL unless
    `single_line`), in linear time; None when there is no match.

    Why it equals the regex: finditer takes the leftmost opening tag from which a match exists, ends
    it at the first closing tag after it, and resumes after that match. Without DOTALL an opening
    tag whose line holds no closing tag after it cannot match, nor can any later one on that line,
    so the scan skips to the next line (which keeps the scan linear). Tags must not contain "\\n".
    """
    open_len, close_len, end = len(open_tag), len(close_tag), len(text)
    last: tuple[int, int] | None = None
    position, newline = 0, -1
    while True:
        start = text.find(open_tag, position)
        if start < 0:
            break
        content = start + open_len
        if not single_line:
            close = text.find(close_tag, content)
            if close < 0:
                break
        else:
            if newline < content:  # the first newline at or after `content`, found once per line
                newline = text.find("\n", content)
                if newline < 0:
                    newline = end
            close = text.find(close_tag, content, newline)
            if close < 0:
                position = newline + 1
                continue
        last = (content, close)
        position = close + close_len
    return None if last is None else text[last[0]:last[1]]


def _dollar_end(text: str) -> int:
    """Where Python's non-MULTILINE ``$`` lets a pattern end: before one final "\\n", else at the end."""
    return len(text) - 1 if text.endswith("\n") else len(text)


def ends_with_image_search(text: str) -> bool:
    """``re.search(r"<search><img></search>$", text)`` on the raw turn."""
    return text.endswith(IMAGE_SEARCH_ACTION, 0, _dollar_end(text))


def ends_with_text_search(text: str) -> bool:
    """``re.search(r"<text_search>.*</text_search>$", text)`` (no DOTALL) on the raw turn: it ends
    with ``</text_search>`` and an opening tag precedes it on the same line."""
    end = _dollar_end(text)
    if not text.endswith(TEXT_SEARCH_CLOSE, 0, end):
        return False
    close = end - len(TEXT_SEARCH_CLOSE)
    line_start = text.rfind("\n", 0, close) + 1
    return text.find(TEXT_SEARCH_OPEN, line_start, close) >= 0


def last_answer(text: str) -> str | None:
    """The answer MMSearch-R1 scores: the last non-greedy ``<answer>(.*?)</answer>`` match (DOTALL),
    stripped; None when there is none."""
    answer = last_lazy_match(text, ANSWER_OPEN, ANSWER_CLOSE)
    return None if answer is None else answer.strip()


def text_search_query(text: str) -> str | None:
    """The official query: the last non-greedy single-line ``<text_search>(.*?)</text_search>``
    match, not stripped."""
    return last_lazy_match(text, TEXT_SEARCH_OPEN, TEXT_SEARCH_CLOSE, single_line=True)


# ----------------------------------------------------------------------------------- one turn

def parse_action(text: str) -> Action:
    """Parse one raw assistant turn with the official triggers. Never raises."""
    if not isinstance(text, str):
        return Action("invalid", reason=f"action must be a string, got {type(text).__name__}")
    answer = last_answer(text)
    if ends_with_image_search(text):
        return Action("image_search", answer=answer)
    if ends_with_text_search(text):
        query = text_search_query(text)
        if query:
            return Action("text_search", answer=answer, query=query)
        return Action("invalid", answer=answer, reason="empty text search query")
    stripped = text.strip()
    if answer is not None and stripped.endswith(ANSWER_CLOSE):
        return Action("answer", answer=answer)
    if answer is not None:
        return Action("invalid", answer=answer, reason="text after the final </answer>")
    if not stripped:
        return Action("invalid", reason="empty turn")
    return Action("invalid", reason="the turn ends with no search action and holds no <answer>")


def _reason_then(turn: str, action_start: int) -> bool:
    """``^<reason>.*</reason>.*`` up to `action_start`, with exactly one of each reason tag."""
    if not turn.startswith(REASON_OPEN):
        return False
    if turn.count(REASON_OPEN) != 1 or turn.count(REASON_CLOSE) != 1:
        return False
    return turn.find(REASON_CLOSE) + len(REASON_CLOSE) <= action_start


def turn_is_well_formed(text: str, kind: ActionKind) -> bool:
    """The official per-turn format check for a turn of `kind` (stripped first)."""
    turn = text.strip() if isinstance(text, str) else ""
    if kind == "answer":
        if not turn.endswith(ANSWER_CLOSE) or turn.count(ANSWER_OPEN) != 1 or turn.count(ANSWER_CLOSE) != 1:
            return False
        if IMAGE_SEARCH_ACTION in turn or TEXT_SEARCH_OPEN in turn or TEXT_SEARCH_CLOSE in turn:
            return False
        open_ = turn.find(ANSWER_OPEN)
        return open_ + len(ANSWER_OPEN) <= len(turn) - len(ANSWER_CLOSE) and _reason_then(turn, open_)
    if kind == "image_search":
        if not turn.endswith(IMAGE_SEARCH_ACTION) or turn.count(IMAGE_SEARCH_ACTION) != 1:
            return False
        if ANSWER_OPEN in turn or ANSWER_CLOSE in turn or TEXT_SEARCH_OPEN in turn or TEXT_SEARCH_CLOSE in turn:
            return False
        return _reason_then(turn, len(turn) - len(IMAGE_SEARCH_ACTION))
    if kind == "text_search":
        if not turn.endswith(TEXT_SEARCH_CLOSE):
            return False
        if turn.count(TEXT_SEARCH_OPEN) != 1 or turn.count(TEXT_SEARCH_CLOSE) != 1:
            return False
        if ANSWER_OPEN in turn or ANSWER_CLOSE in turn or IMAGE_SEARCH_ACTION in turn:
            return False
        open_ = turn.find(TEXT_SEARCH_OPEN)
        return (open_ + len(TEXT_SEARCH_OPEN) <= len(turn) - len(TEXT_SEARCH_CLOSE)
                and _reason_then(turn, open_))
    return False


# ---------------------------------------------------------------------------- whole trajectory

def format_score(turns: Sequence[str]) -> int:
    """1 when the trajectory is one of the four valid shapes and each turn passes the official
    check for its position; else 0 (also for 0 or more than 3 turns, which the official scorer
    does not accept)."""
    if isinstance(turns, str):
        raise TypeError("format_score takes the sequence of assistant turns, not a single string")
    turns = list(turns)
    if not turns or len(turns) > 3 or not turn_is_well_formed(turns[-1], "answer"):
        return 0
    if len(turns) == 1:
        return 1
    if len(turns) == 2:
        return int(turn_is_well_formed(turns[0], "image_search") or turn_is_well_formed(turns[0], "text_search"))
    return int(turn_is_well_formed(turns[0], "image_search") and turn_is_well_formed(turns[1], "text_search"))


def turn_search_strings(text: str) -> int:
    """How many searches the official scorer counts in one turn: one for ``<search><img></search>``
    anywhere, one for a ``<text_search>`` and a ``</text_search>`` anywhere."""
    if not isinstance(text, str):
        return 0
    return int(IMAGE_SEARCH_ACTION in text) + int(TEXT_SEARCH_OPEN in text and TEXT_SEARCH_CLOSE in text)


def search_count(turns: Sequence[str], executed: int = 0) -> int:
    """The searches the penalty counts: the search strings of the non-last turns, or of the only
    turn of a 1-turn trajectory (where nothing ran). `executed` is ignored (the lenient rule set
    counts executed searches instead)."""
    turns = list(turns)
    counted = turns if len(turns) == 1 else turns[:-1]
    return sum(turn_search_strings(turn) for turn in counted)
