"""Questions about a world's entities, as `VQASample`s.

Three kinds, following FVQA's categories:
  search_free (meta needs "none"): answerable from the emblem's pixels (background colour, colour
      or shape of the largest figure, number of small marks); ground truth is the emblem design.
  search_required, needs "image": the entity's name; an image search finds its pages, whose
      titles carry the name.
  search_required, needs "image+text": one fact; the image search gives the name, a text search
      for "<name> <fact word>" finds a sentence stating it.
meta["plan"] is the minimal tool sequence for an oracle agent. No question contains its entity's
name or its answer. Question ids are "synth-<split>-<n>", so splits never share ids; which
entities a split may use is fixed by the world (disjoint test and train entities).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from mmsearch_gym.checks import require_int
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.synth.kinds import (
    KINDS,
    NAME_QUESTIONS,
    NUMBER_WORDS,
    SHAPE_ALIASES,
    VISUAL_QUESTIONS,
)
from mmsearch_gym.data.synth.palette import colour
from mmsearch_gym.data.synth.seeding import py_rng
from mmsearch_gym.data.synth.world import SPLITS, Entity, World

NEEDS = ("none", "image", "image+text")
DEFAULT_MIX: Mapping[str, float] = {"none": 0.2, "image": 0.3, "image+text": 0.5}
VISUAL_KEYS = tuple(VISUAL_QUESTIONS)
SOURCE = "synth"

Item = tuple[Entity, str]  # (entity, fact key: a visual key, "name" or a fact of its kind)


def _counts(n: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder rounding, so the category counts sum to exactly `n`."""
    total = sum(mix.values())
    raw = {need: n * mix.get(need, 0.0) / total for need in NEEDS}
    counts = {need: int(value) for need, value in raw.items()}
    by_remainder = sorted(NEEDS, key=lambda need: (-(raw[need] - counts[need]), NEEDS.index(need)))
    for need in by_remainder[: n - sum(counts.values())]:
        counts[need] += 1
    return counts


def _checked_mix(mix: Mapping[str, float] | None) -> Mapping[str, float]:
    if mix is None:
        return DEFAULT_MIX
    unknown = sorted(set(mix) - set(NEEDS))
    if unknown:
        raise ValueError(f"mix has unknown keys {unknown}; allowed: {list(NEEDS)}")
    bad = {key: value for key, value in mix.items() if not isinstance(value, (int, float)) or value < 0}
    if bad:
        raise ValueError(f"mix weights must be non-negative numbers, got {bad}")
    if sum(mix.values()) <= 0:
        raise ValueError(f"mix weights must not all be zero, got {dict(mix)}")
    return mix


def _cycled(items: Sequence[Item], count: int, rng: random.Random) -> list[Item]:
    """`count` items: passes over the pool, each in a fresh shuffled order, so every item is used
    once before any repeats (repeats differ in phrasing when the template draw differs)."""
    out: list[Item] = []
    while len(out) < count and items:
        batch = list(items)
        rng.shuffle(batch)
        out.extend(batch[: count - len(out)])
    return out


def _visual(entity: Entity, key: str, rng: random.Random) -> tuple[str, str, tuple[str, ...]]:
    design = entity.emblem
    if key == "background_colour":
        return rng.choice(VISUAL_QUESTIONS[key]), design.background, colour(design.background).aliases
    if key == "figure_colour":
        return rng.choice(VISUAL_QUESTIONS[key]), design.figure_colour, colour(design.figure_colour).aliases
    if key == "figure_shape":
        return rng.choice(VISUAL_QUESTIONS[key]), design.figure, SHAPE_ALIASES[design.figure]
    if key == "mark_count":
        template = rng.choice(VISUAL_QUESTIONS[key])
        count = design.mark_count
        return template.format(plural=design.marks + "s"), str(count), (NUMBER_WORDS[count],)
    raise ValueError(f"unknown visual question {key!r}; known: {VISUAL_KEYS}")


def _sample(index: int, split: str, suite: str, entity: Entity, key: str, need: str,
            rng: random.Random) -> VQASample:
    spec = KINDS[entity.kind]
    if need == "none":
        question, answer, aliases = _visual(entity, key, rng)
        plan = ["answer"]
    elif need == "image":
        question = rng.choice(NAME_QUESTIONS).format(noun=spec.noun)
        answer, aliases = entity.name, entity.name_aliases
        plan = ["image_search", "answer"]
    else:
        fact = entity.fact(key)
        question = rng.choice(spec.fact(key).questions)
        answer, aliases = fact.value, fact.aliases
        plan = ["image_search", f"text_search:{fact.query}", "answer"]
    meta = {"entity": entity.name, "kind": entity.kind, "fact": key, "needs": need, "suite": suite,
            "split": split, "plan": plan}
    return VQASample(
        id=f"synth-{split}-{index:06d}", image=entity.emblem_png, question=question,
        answers=(answer,), candidate_answers=tuple(a for a in aliases if a != answer),
        category="search_free" if need == "none" else "search_required", source=SOURCE, meta=meta,
    )


def generate_questions(world: World, n: int, seed: int, split: str, *,
                       mix: Mapping[str, float] | None = None, suite: str = "synth") -> tuple[VQASample, ...]:
    """`n` questions about the entities of `split`, mixed by `needs` ("none", "image",
    "image+text"; default 20/30/50 %). Deterministic in (world, n, seed, split, mix, suite).

    Each category cycles through its pool of (entity, fact) items, so questions repeat only once
    the pool is used up: 4 visual, 1 name and 4 fact items per entity.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    n = require_int("n", n, low=0)
    counts = _counts(n, _checked_mix(mix))
    entities = world.split(split)
    if not entities and n:
        raise ValueError(f"the world has no {split!r} entities (n_test_entities decides the split)")
    pools: dict[str, list[Item]] = {
        "none": [(entity, key) for entity in entities for key in VISUAL_KEYS],
        "image": [(entity, "name") for entity in entities],
        "image+text": [(entity, fact.key) for entity in entities for fact in entity.facts],
    }
    planned: list[tuple[Entity, str, str]] = []
    for need in NEEDS:
        rng = py_rng(seed, "questions", split, need)
        planned.extend((entity, key, need) for entity, key in _cycled(pools[need], counts[need], rng))
    py_rng(seed, "questions", split, "order").shuffle(planned)
    phrasing = py_rng(seed, "questions", split, "phrasing")
    return tuple(_sample(index, split, suite, entity, key, need, phrasing)
                 for index, (entity, key, need) in enumerate(planned))

