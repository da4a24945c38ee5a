"""Model-free baseline agents: no-search, MMSearch-R1's RAG workflow, an oracle, and a scripted agent.

They need no model and no GPU, so the offline benchmark runs anywhere, and they bracket what a model
can do: the no-search agent shows the knowledge boundary, the RAG workflow always searches, and the
oracle (which reads the gold answer) is the upper bound and a test tool for the whole pipeline.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from mmsearch_gym.agents.base import AgentBase, Observation
from mmsearch_gym.agents.turns import (
    answer_turn,
    assistant_turns,
    image_search_turn,
    last_user_text,
    text_search_turn,
)
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.envs.types import ResultItem, SearchOutcome
from mmsearch_gym.imaging import NAMED_COLOURS, dominant_colour_name

# The named colours a pixel-reading baseline can name (the synthetic suites paint with them).
NAMED_COLORS: dict[str, tuple[int, int, int]] = dict(NAMED_COLOURS)


def dominant_color_name(pixels: np.ndarray, palette: Mapping[str, tuple[int, int, int]] = NAMED_COLORS) -> str:
    """The palette name that the most pixels are closest to (`imaging.dominant_colour_name`)."""
    return dominant_colour_name(pixels, dict(palette))


class NoSearchAgent(AgentBase):
    """Answers at once, never searches: colour questions from the pixels, anything else with a
    fixed guess. The direct-answer baseline's behaviour without a model."""

    name = "no-search"

    def __init__(self, palette: Mapping[str, tuple[int, int, int]] = NAMED_COLORS, fallback: str = "unknown") -> None:
        self.palette = dict(palette)
        self.fallback = fallback

    def act(self, obs: Observation) -> str:
        # the sample's question from `info` (structured); the prompt text only outside the env's loop
        question = str(self.info.get("question") or last_user_text(obs)).lower()
        if "colour" in question or "color" in question:
            return answer_turn("The colour covering most of the image answers this.",
                               dominant_color_name(obs["images"][0], self.palette))
        return answer_turn("I cannot tell this from the image and I will not search.", self.fallback)

    def card(self) -> dict[str, Any]:
        return {**super().card(), "palette": sorted(self.palette), "fallback": self.fallback}


_YEAR = re.compile(r"\b(1[0-9]{3}|20[0-9]{2})\b")
_CAPITALISED = re.compile(r"\b([A-Z][a-z]+(?: [A-Z][a-z]+)*)")
_TITLE_SEPARATORS = re.compile(r"\s+[-|:–—]\s+")
_STOP = {"the", "a", "an", "of", "in", "on", "was", "is", "which", "what", "who", "when", "where", "this",
         "with", "that", "by", "for", "to", "and", "did", "does", "shown", "image", "emblem", "organisation"}


def entity_from_title(title: str) -> str:
    """'Velmora Guild - Encyclopedia' → 'Velmora Guild' (page titles name the entity first)."""
    return _TITLE_SEPARATORS.split(title.strip(), maxsplit=1)[0].strip()


def entity_from_titles(titles: Sequence[str]) -> str:
    """The name the top visual matches agree on: the capitalised phrase found in the most titles
    (ties: the longer phrase, then the earlier title), so 'Travel diary: discovering Velmora Guild'
    and 'Velmora Guild - Encyclopedia' give 'Velmora Guild'. A single title gives its lead phrase."""
    if len(titles) < 2:
        return entity_from_title(titles[0]) if titles else ""
    votes: dict[str, tuple[int, int, int]] = {}
    for position, title in enumerate(titles):
        words = title.replace(":", " ").split()
        phrases = {" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, min(len(words), i + 4) + 1)
                   if all(w[:1].isupper() for w in words[i:j]) and words[i] not in ("The", "A", "An")}
        for phrase in phrases:
            count, length, first = votes.get(phrase, (0, len(phrase), -position))
            votes[phrase] = (count + 1, length, first)
    best, (count, _, _) = max(votes.items(), key=lambda item: item[1]) if votes else ("", (0, 0, 0))
    return best if count >= 2 else entity_from_title(titles[0])


def _keywords(text: str) -> set[str]:
    return {word for word in re.findall(r"[a-z0-9]+", text.lower()) if word not in _STOP}


def extract_answer(question: str, passages: Sequence[str], entity: str) -> str:
    """A model-free extractive reader: pick the passage sentence sharing most words with the
    question, then the span the question type asks for (a year, a capitalised name, or the entity)."""
    lowered = question.lower()
    asks_identity = "name" in lowered or "belong" in lowered
    if asks_identity and ("what is" in lowered or "which" in lowered) and "founder" not in lowered:
        return entity
    sentences = [s.strip() for passage in passages for s in re.split(r"(?<=[.!?])\s+", passage) if s.strip()]
    if not sentences:
        return entity or "unknown"
    wanted = _keywords(question)
    best = max(sentences, key=lambda s: (len(wanted & _keywords(s)), -sentences.index(s)))
    if "year" in lowered or lowered.startswith("when"):
        match = _YEAR.search(best)
        if match:
            return match.group(1)
    entity_words = set(entity.split())
    names = [name for name in _CAPITALISED.findall(best)
             if not set(name.split()) <= entity_words and name.split()[0] != "The"]
    return names[-1] if names else (entity or "unknown")


def _result_items(outcomes: Sequence[SearchOutcome], kind: str) -> list[ResultItem]:
    """Every result item of the searches of `kind` so far, in order."""
    return [item for outcome in outcomes if outcome["kind"] == kind for item in outcome["items"]]


class RAGWorkflowAgent(AgentBase):
    """MMSearch-R1's "RAG workflow" baseline: always an image search, then a text search built from
    the top visual match and the question, then an extractive answer from the summaries.

    It reads the question and the results from the env's structured `info` (`question`,
    `search_results`: see `mmsearch_gym.envs.types.StepInfo`), never from the prompt text, so any
    `PromptSet` works. It needs the latest step info in `self.info`, which `act_batch` (and so the
    evaluator) provides; a hand-written loop sets `agent.info = info` after each step.
    """

    name = "rag"

    def act(self, obs: Observation) -> str:
        turn = assistant_turns(obs)
        if turn == 0:
            return image_search_turn("Identify what the image shows.")
        if "question" not in self.info or "search_results" not in self.info:
            raise ValueError("RAGWorkflowAgent needs the env's latest step info (keys 'question' and "
                             "'search_results'): use act_batch, or set agent.info = info after each step")
        question = str(self.info["question"])
        outcomes: Sequence[SearchOutcome] = self.info["search_results"]
        entity = entity_from_titles([item["title"] for item in _result_items(outcomes, "image")])
        if turn == 1:
            query = " ".join(part for part in (entity, question) if part) or "image"
            return text_search_turn("Look up the question about the matched entity.", query)
        passages = [item["snippet"] for item in _result_items(outcomes, "text")]
        return answer_turn("Answer extracted from the search results.", extract_answer(question, passages, entity))


class OracleAgent(AgentBase):
    """Knows each sample's gold answer and its minimal search plan: an upper bound and a test tool.

    The plan comes from `sample.meta["plan"]` (e.g. `["image_search", "text_search:Velmora Guild
    founded", "answer"]`); without one, search-free samples are answered at once and search-required
    ones after an image search.
    """

    name = "oracle"

    def __init__(self, dataset: Sequence[VQASample]) -> None:
        self._samples = {sample.id: sample for sample in dataset}

    @staticmethod
    def plan(sample: VQASample) -> list[str]:
        plan = sample.meta.get("plan") if sample.meta else None
        if plan:
            return list(plan)
        return ["answer"] if sample.category == "search_free" else ["image_search", "answer"]

    def act(self, obs: Observation) -> str:
        sample = self._samples[self.info["sample_id"]]
        plan = self.plan(sample)
        step = plan[min(assistant_turns(obs), len(plan) - 1)]
        if step == "image_search":
            return image_search_turn("I need to identify what the image shows.")
        if step.startswith("text_search:"):
            return text_search_turn("I need a fact about it.", step.split(":", 1)[1])
        return answer_turn("I know the answer.", sample.answers[0])


class ScriptedAgent(AgentBase):
    """Plays fixed turns: the same list for every episode, a mapping sample id → list, or a callable
    `(obs, info) -> str`. For tests, demos and replaying recorded trajectories."""

    name = "scripted"

    def __init__(self, script: Sequence[str] | Mapping[str, Sequence[str]] | Callable[[Observation, Mapping], str],
                 name: str = "scripted") -> None:
        self.script = script
        self.name = name

    def act(self, obs: Observation) -> str:
        if callable(self.script):
            return self.script(obs, self.info)
        turns = self.script[self.info["sample_id"]] if isinstance(self.script, Mapping) else self.script
        turn = assistant_turns(obs)
        if turn >= len(turns):
            raise ValueError(f"ScriptedAgent {self.name!r} has no turn {turn} for sample {self.info.get('sample_id')!r}")
        return turns[turn]
