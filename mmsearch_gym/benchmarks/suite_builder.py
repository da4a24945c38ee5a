"""Building a synthetic suite with its recorded search cache (how the bundled `synth-mini` is made).

Steps: generate the world, questions and web corpus (`data.synth`), index the corpus with the local
retrieval backend, play the baseline agents on both splits while recording every search they make,
and export the recording as one bundle. Strict replay of that bundle then needs neither the corpus
nor an index, so the suite ships as a few megabytes of package data.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from mmsearch_gym.agents.base import Agent
from mmsearch_gym.agents.baselines import NoSearchAgent, OracleAgent, RAGWorkflowAgent
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
from mmsearch_gym.cache.backend import CachedSearchBackend
from mmsearch_gym.cache.bundle import BundleInfo, export_bundle
from mmsearch_gym.cache.store import SearchCache
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suite_io import read_suite
from mmsearch_gym.data.synth.build import build_suite
from mmsearch_gym.search.types import SearchBackend

CACHE_BUNDLE = "cache.zip"


def baseline_agents(samples: Sequence[VQASample]) -> list[Agent]:
    return [OracleAgent(samples), RAGWorkflowAgent(), NoSearchAgent()]


def record_searches(samples: Sequence[VQASample], backend: SearchBackend, cache: SearchCache,
                    agents: Callable[[Sequence[VQASample]], list[Agent]] = baseline_agents) -> None:
    """Play every agent on every sample, recording each search into `cache`."""
    recorder = CachedSearchBackend(backend, cache, "record")
    spec = RunSpec(samples, recorder)
    with tempfile.TemporaryDirectory(prefix="mmsearch-record-") as scratch:
        for agent in agents(samples):
            evaluate(agent, spec, Path(scratch) / agent.name)


@dataclass(frozen=True)
class BuiltSuite:
    out_dir: Path
    test_hash: str
    train_hash: str
    bundle: BundleInfo


def build_recorded_suite(out_dir: str | Path, *, seed: int = 0, n_test: int = 300, n_train: int = 1000,
                         n_entities_test: int = 120, n_entities_train: int = 360, name: str = "synth-mini",
                         keep_corpus: bool = False) -> BuiltSuite:
    """Write `out_dir/test`, `out_dir/train`, `out_dir/cache.zip` (and `out_dir/corpus` if kept)."""
    from mmsearch_gym.search.local import LocalCorpusBackend  # needs the `local` extra

    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="mmsearch-build-") as scratch:
        corpus_root = out if keep_corpus else Path(scratch)
        built = build_suite(corpus_root if keep_corpus else scratch, seed=seed, n_test=n_test, n_train=n_train,
                            n_entities_test=n_entities_test, n_entities_train=n_entities_train, name=name,
                            overwrite=True)
        if built.corpus_dir is None:  # build_suite writes a corpus unless asked not to
            raise RuntimeError(f"build_suite wrote no corpus under {corpus_root}; the recording needs one")
        backend = LocalCorpusBackend(built.corpus_dir)
        with SearchCache(Path(scratch) / "cache") as cache:
            for split_dir in (built.test_dir, built.train_dir):
                record_searches(read_suite(split_dir), backend, cache)
            out.mkdir(parents=True, exist_ok=True)
            bundle = export_bundle(cache, out / CACHE_BUNDLE)
        if not keep_corpus:
            import shutil

            for split in ("test", "train"):
                target = out / split
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(Path(scratch) / split, target)
    return BuiltSuite(out, built.test_hash, built.train_hash, bundle)
