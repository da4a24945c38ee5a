"""The prompts the environment shows the model (our own wording; golden-file tests pin them).

A `PromptSet` holds every template. Users can plug their own (for instance a paper's verbatim
prompts) with `ImageSearchVQAEnv(prompts=PromptSet(...))` or `prompts="path/to/prompts.json"`
(a JSON object with any of the field names below; missing fields keep our defaults).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Union

ROUND_ONE = """Answer the question about the image. You may use web search when the image alone is not enough.

Start every reply with your reasoning inside <reason> and </reason>. Then end the reply with exactly one of these actions:
- <answer>your answer</answer> when you can answer. Keep it short: a name, a number, a date or a few words.
- <search><img></search> to search the web with the image, when you need to know what or who is shown. You can do this once.
- <text_search>your query</text_search> to search the web with words, when you know what is shown but need a fact about it. The text search cannot see the image, so write a specific, self-contained query.

Search only when you need to: when you are sure, answer directly. After a search you see its results and reply again in the same format.

Question: {question}"""

AFTER_IMAGE_SEARCH = """Above are the image search results. If they tell you enough, reply with <reason>...</reason><answer>...</answer>. If you still need a fact, reply with <reason>...</reason><text_search>your query</text_search>, naming in the query what the image search found."""

AFTER_TEXT_SEARCH = """Above are the text search results. Now reply with <reason>...</reason><answer>...</answer>, answering from the results and the image. Keep the answer short."""

DIRECT_ANSWER = """Answer the question about the image from what you see and what you know; you have no tools.

Start your reply with your reasoning inside <reason> and </reason>, then give a short final answer inside <answer> and </answer>.

Question: {question}"""

RESULTS_TURN = """Searched results: <information>{results}</information>
Original user's question: {question}
{follow_up}"""

IMAGE_RESULTS_HEADER = "[Image Search Results] Web pages whose images match the question's image. Each result shows the matched image and the page title.\n"
TEXT_RESULTS_HEADER = "[Text Search Results] Summaries of the web pages that best match the query \"{query}\".\n"
NO_RESULTS = "No results were found."
TOOL_ERROR = "[Search Error] The {kind} search failed: {error}"

PROMPT_STYLES = ("mmsearch_r1", "direct_answer")


@dataclass(frozen=True)
class PromptSet:
    """Every template the environment renders. Placeholders: `{question}` in the round-one prompts,
    `{results}`, `{question}` and `{follow_up}` in `results_turn`, `{query}` in `text_results_header`,
    `{kind}` and `{error}` in `tool_error`."""

    round_one: str = ROUND_ONE
    direct_answer: str = DIRECT_ANSWER
    after_image_search: str = AFTER_IMAGE_SEARCH
    after_text_search: str = AFTER_TEXT_SEARCH
    results_turn: str = RESULTS_TURN
    image_results_header: str = IMAGE_RESULTS_HEADER
    text_results_header: str = TEXT_RESULTS_HEADER
    no_results: str = NO_RESULTS
    tool_error: str = TOOL_ERROR

    _REQUIRED = {
        "round_one": {"question"},
        "direct_answer": {"question"},
        "results_turn": {"results", "question", "follow_up"},
    }

    def __post_init__(self) -> None:
        for name, required in self._REQUIRED.items():
            template = getattr(self, name)
            present = {field_name for _, field_name, _, _ in string.Formatter().parse(template) if field_name}
            missing = required - present
            if missing:
                raise ValueError(f"prompt template {name!r} lacks placeholder(s) {sorted(missing)}")

    @classmethod
    def from_file(cls, path: Union[str, Path]) -> PromptSet:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read prompt file {str(path)!r}: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"prompt file {str(path)!r} must hold a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"prompt file {str(path)!r} has unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return replace(cls(), **data)

    def first_turn(self, question: str, style: str) -> str:
        if style == "mmsearch_r1":
            return self.round_one.format(question=question)
        if style == "direct_answer":
            return self.direct_answer.format(question=question)
        raise ValueError(f"unknown prompt_style {style!r}; use one of {PROMPT_STYLES}")


def resolve_prompts(prompts: Union[PromptSet, str, Path, None]) -> PromptSet:
    if prompts is None:
        return PromptSet()
    if isinstance(prompts, PromptSet):
        return prompts
    if isinstance(prompts, (str, Path)):
        return PromptSet.from_file(prompts)
    raise ValueError(f"prompts must be a PromptSet or a JSON file path, got {type(prompts).__name__}")
