"""`build_suite`: a world, its test and train suites, and its corpus, written in one call.

One world holds both splits' entities (test ones disjoint from train ones) and one corpus covers
them all plus the distractors, so a trained agent searches the same web at test time but cannot
have memorised the test entities' facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmsearch_gym.checks import require_int
from mmsearch_gym.data.suite_io import write_suite
from mmsearch_gym.data.synth.corpus import write_corpus
from mmsearch_gym.data.synth.questions import generate_questions
from mmsearch_gym.data.synth.seeding import derive_seed
from mmsearch_gym.data.synth.world import World, generate_world


@dataclass(frozen=True)
class SuiteBuild:
    world: World
    test_dir: Path
    train_dir: Path
    corpus_dir: Path | None
    test_hash: str
    train_hash: str


def build_suite(out_dir: str | Path, seed: int = 0, n_test: int = 300, n_train: int = 1000,
                n_entities_test: int = 120, n_entities_train: int = 360, *, name: str = "synth-mini",
                n_distractors: int | None = None, pool_entities: int | None = None, corpus: bool = True,
                overwrite: bool = False) -> SuiteBuild:
    """Write `out_dir/test/`, `out_dir/train/` (suite directories, see `suite_io`) and, unless
    `corpus=False`, `out_dir/corpus/` (see `synth.corpus`). Defaults give the bundled synth-mini:
    300 test questions on 120 entities, 1000 train questions on 360 others. `pool_entities` sizes the
    shared fact-value pools (default: all entities); pinning it to 480 keeps synth-mini's test split
    byte-identical with more train entities or questions (see `generate_world`)."""
    for label, value in (("n_test", n_test), ("n_train", n_train), ("n_entities_test", n_entities_test),
                         ("n_entities_train", n_entities_train)):
        require_int(label, value, low=1)
    out = Path(out_dir)
    world = generate_world(seed, n_entities_test + n_entities_train, n_test_entities=n_entities_test,
                           n_distractors=n_distractors, pool_entities=pool_entities)
    hashes = {}
    for split, count in (("test", n_test), ("train", n_train)):
        samples = generate_questions(world, count, derive_seed(seed, "build", split), split, suite=name)
        hashes[split] = write_suite(
            samples, out / split, name=f"{name}/{split}", overwrite=overwrite,
            metadata={"generator": "mmsearch_gym.data.synth", "seed": seed, "split": split,
                      "n_entities": len(world.split(split)), "n_distractors": len(world.distractors)},
        )
    corpus_dir = write_corpus(world, out / "corpus", overwrite=overwrite) if corpus else None
    return SuiteBuild(world, out / "test", out / "train", corpus_dir, hashes["test"], hashes["train"])
