"""Synthetic search-augmented VQA: a seeded world of fictional entities with emblems and facts,
a web corpus about them for the local search backend, and questions that need zero, one or two
searches. Everything is a deterministic function of the seed (byte-identical across runs).

    world = generate_world(seed=0, n_entities=480, n_test_entities=120)
    write_corpus(world, "corpus/")
    test = generate_questions(world, 300, seed=1, split="test")
"""

from mmsearch_gym.data.synth.build import SuiteBuild, build_suite
from mmsearch_gym.data.synth.corpus import Page, iter_corpus, write_corpus
from mmsearch_gym.data.synth.emblems import EmblemDesign, phash64, render
from mmsearch_gym.data.synth.questions import DEFAULT_MIX, generate_questions
from mmsearch_gym.data.synth.world import Distractor, Entity, Fact, World, generate_world

__all__ = [
    "DEFAULT_MIX", "Distractor", "EmblemDesign", "Entity", "Fact", "Page", "SuiteBuild", "World",
    "build_suite", "generate_questions", "generate_world", "iter_corpus", "phash64", "render",
    "write_corpus",
]
