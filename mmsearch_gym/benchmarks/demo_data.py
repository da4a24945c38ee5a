"""Data for the learning-to-search demo (`benchmarks.demo`): the suite, its web, the prompts, the SFT
demonstrations and the tokenizer's texts.

Why each choice:
- The synthetic suite and its corpus are regenerated from the seed (`data.synth.build_suite`), so the
  policy's own queries are answered by real retrieval (`LocalCorpusBackend`) at training and at test
  time alike; with the synth-mini settings the regenerated test split is checked to be byte-identical
  to the bundled `synth-mini` test split (same suite hash), so the numbers are on that split.
- `DEMO_PROMPTS` is a `PromptSet` with short wording (a tiny model pays for every prompt token at
  every generation step); the env's grammar, rules and reward are unchanged.
- The demonstrations OVER-SEARCH: every episode starts with an image search, including questions
  answerable from the emblem's pixels; the rest is the oracle's plan (a text search for facts, then
  the gold answer). Training on the oracle's adaptive plan would leave nothing for RL to discover.
- Every demonstrated turn has the same short reasoning, so the turn-1 choice between searching and
  answering is one token (the action tag) that RL can move. Answers and queries start with a space,
  as names do inside the search results, so the BPE gives a name the same tokens wherever it occurs
  and the model can learn to copy it.
- The tokenizer is trained on the demonstrations' texts (train entities only): test entities' names
  are unseen words made of the same syllables.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmsearch_gym.agents.base import AgentBase, Observation
from mmsearch_gym.agents.messages import assistant_turns
from mmsearch_gym.agents.turns import answer_turn, image_search_turn, text_search_turn
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.envs.prompts import PromptSet
from mmsearch_gym.envs.reward import RewardConfig
from mmsearch_gym.trainers.demo_probe import REASON


DEMO_PROMPTS = PromptSet(
    round_one="{question}\nAnswer, or search the image.",
    after_image_search="Answer, or search text.",
    after_text_search="Answer.",
    results_turn="{results}Question: {question}\n{follow_up}",
    image_results_header="Image results:\n",
    text_results_header="Text results:\n",
    no_results="None.",
)
"""Short prompts for a tiny model (the env's grammar and rules are unchanged)."""


@dataclass(frozen=True)
class SuiteScale:
    """Sizes of the regenerated synthetic suite (`data.synth.build_suite`). The defaults are
    synth-mini's (300 test questions on 120 entities, 1000 train questions on 360 others)."""

    seed: int = 0
    n_test: int = 300
    n_train: int = 1000
    n_entities_test: int = 120
    n_entities_train: int = 360
    n_distractors: int | None = None
    pool_entities: int | None = None
    """Entities the fact-value pools are sized for (default: all). 480 (synth-mini's) keeps the test split
    synth-mini's when the train split grows (`--set suite.n_entities_train=2400 --set suite.pool_entities=480`)."""

    @property
    def is_synth_mini(self) -> bool:
        """Whether the regenerated test split is synth-mini's (the train split may be larger)."""
        mini = SuiteScale()
        pools = self.n_entities_test + self.n_entities_train if self.pool_entities is None else self.pool_entities
        return ((self.seed, self.n_test, self.n_entities_test, pools)
                == (mini.seed, mini.n_test, mini.n_entities_test, mini.n_entities_test + mini.n_entities_train))


@dataclass(frozen=True)
class DemoSuite:
    train: tuple[VQASample, ...]
    test: tuple[VQASample, ...]
    corpus_dir: Path
    test_hash: str
    suite_name: str


def build_demo_suite(out_dir: Path, scale: SuiteScale) -> DemoSuite:
    """Regenerate the suite and its corpus under `out_dir` (reused when already there). With the
    synth-mini scale the test split must equal the bundled synth-mini test split (ValueError if not)."""
    from mmsearch_gym.benchmarks.runner import dataset_hash
    from mmsearch_gym.data.suite_io import read_suite
    from mmsearch_gym.data.synth.build import build_suite

    marker = out_dir / ".complete"
    if not marker.is_file():
        build_suite(out_dir, seed=scale.seed, n_test=scale.n_test, n_train=scale.n_train,
                    n_entities_test=scale.n_entities_test, n_entities_train=scale.n_entities_train,
                    n_distractors=scale.n_distractors, pool_entities=scale.pool_entities, name="synth-mini",
                    overwrite=True)
        marker.write_text("ok\n")
    train, test = tuple(read_suite(out_dir / "train")), tuple(read_suite(out_dir / "test"))
    test_hash = dataset_hash(test)
    name = "synth-demo/test"
    if scale.is_synth_mini:
        from mmsearch_gym.data.suites import resolve_dataset

        bundled = tuple(resolve_dataset("synth-mini"))
        if dataset_hash(bundled) != test_hash:
            raise ValueError(f"the regenerated test split in {str(out_dir)!r} differs from the bundled synth-mini "
                             "test split (suite hashes differ); delete the folder and rerun")
        name = "synth-mini"
    return DemoSuite(train, test, out_dir / "corpus", test_hash, name)


def demo_env_kwargs(top_k: int = 1) -> dict[str, Any]:
    """`gym.make` settings of every stage: MMSearch-R1's rules and reward (search penalty on), the
    demo's short prompts, `top_k` results per search."""
    return {"prompts": DEMO_PROMPTS, "top_k": top_k, "reward": RewardConfig(), "max_turns": 3}


class OverSearchAgent(AgentBase):
    """The SFT demonstrator: image search first, always; then the oracle's plan (see module doc)."""

    name = "over-search"

    def __init__(self, samples: Sequence[VQASample]) -> None:
        self._samples = {sample.id: sample for sample in samples}

    @staticmethod
    def plan(sample: VQASample) -> list[str]:
        plan = list(sample.meta.get("plan") or ["answer"]) if sample.meta else ["answer"]
        return plan if plan[0] == "image_search" else ["image_search", *plan]

    def act(self, obs: Observation) -> str:
        sample = self._samples[self.info["sample_id"]]
        plan = self.plan(sample)
        step = plan[min(assistant_turns(obs), len(plan) - 1)]
        if step == "image_search":
            return image_search_turn(REASON)
        if step.startswith("text_search:"):
            return text_search_turn(REASON, " " + step.split(":", 1)[1])
        return answer_turn(REASON, " " + sample.answers[0])


def message_texts(records: Sequence[dict[str, Any]]) -> Iterator[str]:
    """Every text the recorded episodes show or say (questions, results, actions)."""
    for record in records:
        for message in record.get("messages") or ():
            content = message.get("content")
            if isinstance(content, str):
                yield content
                continue
            for part in content or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield part["text"]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
