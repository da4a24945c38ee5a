"""Typed shapes of what the environment hands out: chat messages, their parts, observations, `info`.

Why TypedDicts and not classes: observations and infos must stay plain dicts (Gymnasium's checker,
vector envs, JSON records and every chat template expect them), but agents, trainers and the
evaluator read their keys; these types let a type checker catch a misspelt key or a wrong value kind
in all of them. Agents and trainers import them from here.
"""

from __future__ import annotations

from typing import Literal, Tuple, TypedDict, Union

import numpy as np

from mmsearch_gym.envs.grammar import ActionKind
from mmsearch_gym.search.types import ResultSource, SearchKind

Role = Literal["system", "user", "assistant"]


class TextPart(TypedDict):
    type: Literal["text"]
    text: str


class ImagePart(TypedDict):
    """An image of the dialog: `index` points into the observation's `images`."""

    type: Literal["image"]
    index: int


ContentPart = Union[TextPart, ImagePart]


class ChatMessage(TypedDict):
    """One chat message in the HF/OpenAI multimodal format (image parts by index)."""

    role: Role
    content: list[ContentPart]


class Observation(TypedDict):
    images: Tuple[np.ndarray, ...]
    messages: Tuple[ChatMessage, ...]


class SearchCall(TypedDict):
    """`info["search"]` after a step that searched: what was asked and where the answer came from."""

    kind: SearchKind
    query: str | None
    image_digest: str | None
    items: int
    error: str | None
    source: ResultSource


class ResultItem(TypedDict):
    title: str
    url: str
    snippet: str


class SearchOutcome(TypedDict):
    """One executed search as structured data (the same results the dialog renders as text), so an
    agent never has to parse the prompt wording."""

    kind: SearchKind
    query: str | None
    items: list[ResultItem]
    error: str | None


class _StepInfoAlways(TypedDict):
    sample_id: str
    category: str | None
    question: str
    rules: str
    turn: int
    image_searches: int
    text_searches: int
    searches: int
    tool_errors: int
    cache_hits: int
    cache_misses: int
    search_results: list[SearchOutcome]


class StepInfo(_StepInfoAlways, total=False):
    """The `info` of `reset` and `step`. Deterministic (no wall-clock times), never the gold answer.

    Always present: the keys of `_StepInfoAlways` (`search_results` lists every search executed so
    far, as structured data). After a step: `action_kind`, `invalid_reason`, `action_truncated`;
    after a step that searched: `search`; after the final step: `answer`, `score`, `format_score`
    and `penalised_searches` (the searches the rule set's penalty counted).
    """

    action_kind: ActionKind
    invalid_reason: str | None
    action_truncated: bool
    search: SearchCall
    answer: str | None
    score: float
    format_score: int
    penalised_searches: int
