"""Test helpers for the trainers: a tiny Qwen2.5-VL with a small vocabulary, a synthetic world, and
a logits processor that makes the random policy write scripted turns.

Why scripted turns: a random model never writes a well-formed search action, so multi-turn episodes
(thumbnails inside the completion, masks over tool turns) would never happen. The script forces which
token is sampled; everything else (generate, stopping, log-probs from the raw logits, env, masks) is
the real path, and the recorded log-probs are the model's own (forcing happens after the raw logits).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mmsearch_gym.agents.baselines import OracleAgent
from mmsearch_gym.envs.grammar import IMAGE_SEARCH_ACTION

IMAGE_SEARCH = f"<reason>Need to identify it.</reason>{IMAGE_SEARCH_ACTION}"


def text_search(query: str) -> str:
    return f"<reason>Need a fact.</reason><text_search>{query}</text_search>"


def answer(value: str) -> str:
    return f"<reason>I know.</reason><answer>{value}</answer>"


def build_small_vocab_vlm(base_dir: Path) -> Path:
    """The package's tiny model (512-token BPE vocabulary), built once per test session directory."""
    from mmsearch_gym.trainers.tiny_model import build_tiny_vlm

    return build_tiny_vlm(base_dir / "tiny-vlm-small-vocab")


@functools.lru_cache(maxsize=4)
def synth_env(n_entities: int = 3, n_questions: int = 6, top_k: int = 2, seed: int = 0):
    """(env factory, samples) of a small synthetic world with in-memory search."""
    from mmsearch_gym.trainers.config import EnvConfig, SynthConfig
    from mmsearch_gym.trainers.environment import make_env_factory

    return make_env_factory(EnvConfig(synth=SynthConfig(seed=seed, n_entities=n_entities, n_questions=n_questions),
                                      top_k=top_k))


def oracle_script(sample: Any) -> list[str]:
    """The oracle's turns for a sample (image search, text search, answer as its plan says)."""
    turns = []
    for step in OracleAgent.plan(sample):
        if step == "image_search":
            turns.append(IMAGE_SEARCH)
        elif step.startswith("text_search:"):
            turns.append(text_search(step.split(":", 1)[1]))
        else:
            turns.append(answer(sample.answers[0]))
    return turns


def forcing_factory(tokenizer: Any, scripts: Mapping[tuple[str, int], Sequence[str]]) -> Callable[..., list[Any]]:
    """A `logits_processor_factory` making row (sample_id, group_index) write `scripts[...][turn]`
    token by token (then its eos). Episodes without a script sample freely."""
    import torch
    from transformers import LogitsProcessor

    encoded = {key: [tokenizer(text, add_special_tokens=False)["input_ids"] for text in turns]
               for key, turns in scripts.items()}
    eos = tokenizer.eos_token_id

    class Force(LogitsProcessor):
        def __init__(self, rows: list[list[int] | None], input_length: int) -> None:
            self.rows, self.input_length = rows, input_length

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            step = input_ids.shape[1] - self.input_length
            for row, ids in enumerate(self.rows):
                if ids is None:
                    continue
                token = ids[step] if step < len(ids) else eos
                scores[row] = float("-inf")
                scores[row, token] = 0.0
            return scores

    def factory(contexts: Sequence[Any]) -> list[Any]:
        rows = []
        for context in contexts:
            turns = encoded.get((context.sample_id, context.group_index))
            rows.append(turns[context.turn] if turns is not None and context.turn < len(turns) else None)
        return [Force(rows, contexts[0].input_length)] if contexts else []

    return factory
