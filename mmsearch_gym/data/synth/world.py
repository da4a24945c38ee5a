"""The synthetic world: fictional entities with facts and emblems, plus distractors.

`generate_world(seed, n)` is a pure function of its arguments: every choice draws from a generator
seeded by `derive_seed(seed, purpose, index, attempt)`, so two processes produce identical worlds.
Entities carry a split ("test" or "train"): the test entities are disjoint from the training ones,
so a test score measures finding facts by search rather than recalling them from training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image

from mmsearch_gym.checks import require_int
from mmsearch_gym.data.synth.emblems import (
    MIN_BACKGROUND,
    EmblemDesign,
    colour_fraction,
    hamming_to_all,
    phash64,
    png_bytes,
    random_pattern,
    render,
    sample_design,
)
from mmsearch_gym.data.synth.kinds import KINDS, MONTHS, MOTTOS, FactSpec, KindSpec, all_template_text
from mmsearch_gym.data.synth.names import NameRegistry
from mmsearch_gym.data.synth.seeding import np_rng, py_rng

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")
MIN_PHASH_DISTANCE = 17  # emblems of different entities differ in more than 16 of 64 phash bits
_MAX_ATTEMPTS = 5_000


@dataclass(frozen=True)
class Fact:
    """One fact about an entity: its value, accepted aliases, the sentence pages state it in and
    the text query a sensible agent would issue for it."""

    key: str
    value: str
    aliases: tuple[str, ...]
    sentence: str
    query: str


@dataclass(frozen=True)
class Entity:
    index: int
    kind: str
    name: str
    article: str
    facts: tuple[Fact, ...]
    emblem: EmblemDesign
    emblem_png: bytes = field(repr=False)
    phash: int
    split: str

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    @property
    def the_name(self) -> str:
        """The name as it reads mid-sentence ("the Velmora Guild", "Tarsk")."""
        return f"{self.article} {self.name}" if self.article else self.name

    @property
    def The_name(self) -> str:  # noqa: N802 - mirrors the `{The}` template slot
        return self.the_name[0].upper() + self.the_name[1:]

    @property
    def name_aliases(self) -> tuple[str, ...]:
        """Accepted alternatives to `name`: with its article, and the bare name word."""
        aliases = []
        if self.article:
            aliases.append(self.the_name)
        base = self.name.split(" ")[0]
        if base != self.name:
            aliases.append(base)
        return tuple(aliases)

    def fact(self, key: str) -> Fact:
        for fact in self.facts:
            if fact.key == key:
                return fact
        raise ValueError(f"entity {self.name!r} has no fact {key!r}; facts: {[f.key for f in self.facts]}")


@dataclass(frozen=True)
class Distractor:
    """A fictional thing that is not a question's subject: one web page with an unrelated picture,
    a similar-looking name and the same kinds of facts, so retrieval has to discriminate."""

    index: int
    kind: str
    name: str
    article: str
    facts: tuple[Fact, ...]
    image_attempt: int

    @property
    def the_name(self) -> str:
        return f"{self.article} {self.name}" if self.article else self.name

    @property
    def The_name(self) -> str:  # noqa: N802
        return self.the_name[0].upper() + self.the_name[1:]


@dataclass(frozen=True)
class World:
    seed: int
    entities: tuple[Entity, ...]
    distractors: tuple[Distractor, ...]

    def split(self, name: str) -> tuple[Entity, ...]:
        """The entities of one split ("train" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return tuple(entity for entity in self.entities if entity.split == name)

    def entity(self, name: str) -> Entity:
        for entity in self.entities:
            if entity.name == name:
                return entity
        raise ValueError(f"no entity named {name!r} in this world")


def distractor_image(world_seed: int, distractor: Distractor) -> Image.Image:
    """The distractor's picture (re-rendered on demand rather than kept in memory)."""
    return random_pattern(np_rng(world_seed, "distractor-image", distractor.index, distractor.image_attempt))


class _Pools:
    """Shared fictional values (cities, regions, rivers) and fresh people, all from one registry."""

    def __init__(self, seed: int, n_entities: int, registry: NameRegistry) -> None:
        rng = py_rng(seed, "pools")
        self.registry = registry
        self.cities = tuple(registry.new_word(rng) for _ in range(max(8, n_entities // 5)))
        self.regions = tuple(registry.new_word(rng) + rng.choice(("ia", "land", "mark", "shire"))
                             for _ in range(max(5, n_entities // 12)))
        self.rivers = tuple(registry.new_word(rng, 2, 2) for _ in range(max(5, n_entities // 10)))

    def value(self, spec: FactSpec, rng: random.Random) -> tuple[str, tuple[str, ...]]:
        """A value for the fact and its aliases."""
        if spec.value == "year":
            return str(rng.randint(spec.low, spec.high)), ()
        if spec.value == "number":
            number = rng.randint(spec.low, spec.high)
            return str(number), (f"{number} {spec.unit}",) if spec.unit else ()
        if spec.value == "city":
            return rng.choice(self.cities), ()
        if spec.value == "region":
            return rng.choice(self.regions), ()
        if spec.value == "river":
            river = rng.choice(self.rivers)
            return river, (f"{river} River", f"River {river}")
        if spec.value == "month":
            return rng.choice(MONTHS), ()
        if spec.value == "motto":
            return rng.choice(MOTTOS), ()
        if spec.value == "person":
            given = self.registry.new_word(rng, 2, 2, max_len=8)
            family = self.registry.new_word(rng, 2, 3)
            return f"{given} {family}", (family,)
        raise ValueError(f"fact {spec.key!r} has unknown value type {spec.value!r}")


def _facts(spec: KindSpec, the_name: str, name: str, pools: _Pools, rng: random.Random) -> tuple[Fact, ...]:
    facts = []
    cap = the_name[0].upper() + the_name[1:]
    for fact_spec in spec.facts:
        value, aliases = pools.value(fact_spec, rng)
        sentence = fact_spec.sentence.format(The=cap, the=the_name, value=value)
        facts.append(Fact(fact_spec.key, value, aliases, sentence, f"{name} {fact_spec.query}"))
    return tuple(facts)


def _name(spec: KindSpec, registry: NameRegistry, rng: random.Random, base: str | None = None) -> str:
    word = registry.similar_word(rng, base) if base else registry.new_word(rng)
    return f"{word} {rng.choice(spec.suffixes)}" if spec.suffixes else word


def _emblem(seed: int, index: int, hashes: np.ndarray, min_distance: int) -> tuple[EmblemDesign, bytes, int]:
    """The first design (attempt 0, 1, ...) whose render has a dominant background and whose
    phash is at least `min_distance` bits from every earlier emblem: a deterministic retry."""
    for attempt in range(_MAX_ATTEMPTS):
        design = sample_design(py_rng(seed, "emblem", index, attempt))
        if design.mark_count == 0:
            continue
        image = render(design)
        if colour_fraction(image, design.background) <= MIN_BACKGROUND:
            continue
        value = phash64(image)
        if hashes.size and int(hamming_to_all(value, hashes).min()) < min_distance:
            continue
        return design, png_bytes(image), value
    raise RuntimeError(
        f"no distinct emblem for entity {index} after {_MAX_ATTEMPTS} attempts; the world is too large "
        f"for min_phash_distance={min_distance} (lower it or generate fewer entities)"
    )


def generate_world(seed: int, n_entities: int, *, n_test_entities: int | None = None,
                   n_distractors: int | None = None, pool_entities: int | None = None,
                   min_phash_distance: int = MIN_PHASH_DISTANCE) -> World:
    """A world of `n_entities` fictional entities and `n_distractors` distractors.

    The first `n_test_entities` entities (default a quarter) form the test split, the rest train.
    Distractors default to half as many as entities; half of them have names that share the
    first syllables of an entity's name. The shared value pools (cities, regions, rivers) are sized
    for `pool_entities` (default `n_entities`); the test entities come first, so pinning it keeps
    the test split identical when only the train split grows (`build_suite(pool_entities=...)`).
    """
    n_entities = require_int("n_entities", n_entities, low=1)
    n_test_entities = require_int("n_test_entities", n_entities // 4 if n_test_entities is None else n_test_entities,
                                  low=0, high=n_entities)
    n_distractors = require_int("n_distractors", n_entities // 2 if n_distractors is None else n_distractors, low=0)
    min_phash_distance = require_int("min_phash_distance", min_phash_distance, low=0, high=32)
    pool_entities = require_int("pool_entities", n_entities if pool_entities is None else pool_entities, low=1)

    registry = NameRegistry(all_template_text())
    pools = _Pools(seed, pool_entities, registry)
    kinds = tuple(KINDS)
    entities: list[Entity] = []
    hashes = np.zeros(0, dtype=np.uint64)
    for index in range(n_entities):
        rng = py_rng(seed, "entity", index)
        spec = KINDS[rng.choice(kinds)]
        name = _name(spec, registry, rng)
        the_name = f"{spec.article} {name}" if spec.article else name
        facts = _facts(spec, the_name, name, pools, rng)
        design, png, value = _emblem(seed, index, hashes, min_phash_distance)
        hashes = np.append(hashes, np.uint64(value))
        split = "test" if index < n_test_entities else "train"
        entities.append(Entity(index, spec.kind, name, spec.article, facts, design, png, value, split))

    distractors: list[Distractor] = []
    for index in range(n_distractors):
        rng = py_rng(seed, "distractor", index)
        spec = KINDS[rng.choice(kinds)]
        base = rng.choice(entities).name.split(" ")[0] if rng.random() < 0.5 else None
        name = _name(spec, registry, rng, base)
        the_name = f"{spec.article} {name}" if spec.article else name
        facts = _facts(spec, the_name, name, pools, rng)
        for attempt in range(_MAX_ATTEMPTS):
            image = random_pattern(np_rng(seed, "distractor-image", index, attempt))
            if int(hamming_to_all(phash64(image), hashes).min()) >= min_phash_distance:
                break
        else:  # pragma: no cover - random noise essentially never resembles an emblem
            raise RuntimeError(f"no distractor image far enough from every emblem for distractor {index}")
        distractors.append(Distractor(index, spec.kind, name, spec.article, facts, attempt))
    return World(seed, tuple(entities), tuple(distractors))
