"""How likely a policy is to answer at once, per question category: the demo's exploration probe.

Why: GRPO can only reinforce what the policy samples. After SFT on demonstrations that always search
first, the probability of answering on turn one decides whether RL can discover that some questions
need no search. The probe renders each question's first observation exactly as the rollout does
(`dialog.DialogTokenizer.prompt`), appends the demonstrations' fixed reasoning, and reads the
probability of each action tag at the decision token ("answer", "search", "text" after "><"), at
temperature 1. A greedy evaluation shows only the argmax; this shows the mass RL has to work with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mmsearch_gym.data.sample import VQASample

ACTIONS = {"answer": "<answer>", "image_search": "<search>", "text_search": "<text_search>"}

REASON = "ok"
"""The reasoning of every demonstrated turn: one fixed word, so the turn-one choice is the single token
after `</reason><` (`search`, `answer` or `text`), whose probabilities this module reads."""


def _decision(tokenizer: Any) -> tuple[list[int], dict[str, int]]:
    """(ids of the shared prefix after the prompt, first id that differs per action)."""
    encoded = {name: tokenizer(f"<reason>{REASON}</reason>{tag}", add_special_tokens=False)["input_ids"]
               for name, tag in ACTIONS.items()}
    first = next(iter(encoded.values()))
    shared = 0
    while all(len(ids) > shared and ids[shared] == first[shared] for ids in encoded.values()):
        shared += 1
    choices = {name: ids[shared] for name, ids in encoded.items()}
    if len(set(choices.values())) != len(choices):
        raise ValueError(f"the action tags do not differ in one token under this tokenizer: {encoded}")
    return first[:shared], choices


def first_action_probabilities(model_dir: str | Path, samples: Sequence[VQASample],
                               make_env: Callable[[], Any], batch_size: int = 32) -> dict[str, dict[str, float]]:
    """Mean probability of each first action, per sample category (and "all")."""
    import torch
    from transformers import AutoModelForImageTextToText

    from mmsearch_gym.hf import load_processor
    from mmsearch_gym.trainers.dialog import DialogTokenizer

    processor = load_processor(model_dir)
    dialog = DialogTokenizer(processor)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, local_files_only=True).eval()
    prefix, choices = _decision(dialog.tokenizer)
    pad = dialog.tokenizer.pad_token_id
    env = make_env()
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    try:
        for start in range(0, len(samples), batch_size):
            chunk = samples[start:start + batch_size]
            prompts = []
            for sample in chunk:
                obs, _ = env.reset(options={"sample_id": sample.id})
                prompts.append(dialog.prompt(obs))
            sequences = [prompt.ids + prefix for prompt in prompts]
            length = max(len(ids) for ids in sequences)
            input_ids = torch.full((len(chunk), length), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            for row, ids in enumerate(sequences):
                input_ids[row, length - len(ids):] = torch.tensor(ids)
                attention[row, length - len(ids):] = 1
            batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention,
                                     "mm_token_type_ids": ((input_ids == dialog.image_token_id) & (attention == 1)).int()}
            pixel_values = [pv for prompt in prompts for pv in prompt.pixel_values]
            if pixel_values:
                batch["pixel_values"] = torch.cat(pixel_values)
                batch["image_grid_thw"] = torch.cat([grid for prompt in prompts for grid in prompt.image_grid_thw])
            with torch.no_grad():
                logits = model(**batch, logits_to_keep=1).logits[:, -1].float()
            probabilities = torch.softmax(logits, dim=-1)
            for row, sample in enumerate(chunk):
                for group in (sample.category, "all"):
                    counts[group] = counts.get(group, 0) + 1
                    entry = sums.setdefault(group, {name: 0.0 for name in choices})
                    for name, token in choices.items():
                        entry[name] += float(probabilities[row, token])
    finally:
        env.close()
    return {group: {name: round(total / counts[group], 6) for name, total in entry.items()}
            for group, entry in sorted(sums.items())}


class FirstActionExploration:
    """GRPO rollouts' exploration of the turn-one action (a `RolloutCollector` logits-processor factory).

    Why: after SFT on demonstrations that always search first, the policy gives answering at once a
    probability below 1e-6 (measured by `first_action_probabilities`), so no rollout ever tries it and
    GRPO cannot learn that some questions need no search. With probability `epsilon`, independently per
    episode, the turn-one action tag is drawn uniformly from the three actions instead of from the
    policy; everything else is sampled from the policy. It does not look at the question (it cannot
    tell pixel questions from others): which choice pays is left to the env's reward. The rollout keeps
    recording the policy's own log-probabilities (from the raw logits), so the update is the plain
    policy gradient on these samples. Evaluation never uses it.
    """

    def __init__(self, tokenizer: Any, epsilon: float, seed: int = 0) -> None:
        import torch

        self.prefix, choices = _decision(tokenizer)
        self.choices = sorted(choices.values())
        self.epsilon = float(epsilon)
        self.generator = torch.Generator().manual_seed(seed)
        self.explored = 0
        """How many turn-one actions were drawn uniformly so far."""

    def __call__(self, contexts: Sequence[Any]) -> list[Any]:
        rows = [(context.row, context.input_length) for context in contexts if context.turn == 0]
        if not rows or self.epsilon <= 0:
            return []
        return [_ExploreProcessor(self, rows)]


class _ExploreProcessor:
    def __init__(self, owner: FirstActionExploration, rows: list[tuple[int, int]]) -> None:
        self.owner = owner
        self.rows = rows

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        owner = self.owner
        prefix = owner.prefix
        out = scores
        for row, start in self.rows:
            generated = input_ids[row, start:].tolist()
            if generated != prefix:
                continue
            if float(torch.rand((), generator=owner.generator)) >= owner.epsilon:
                continue
            pick = owner.choices[int(torch.randint(len(owner.choices), (), generator=owner.generator))]
            if out is scores:
                out = scores.clone()
            out[row] = float("-inf")
            out[row, pick] = 0.0
            owner.explored += 1
        return out
