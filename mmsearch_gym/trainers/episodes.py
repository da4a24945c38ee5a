"""A finished episode, token-exact, and the batches built from episodes.

`EpisodeRollout` is what `rollout.RolloutCollector` records per episode. From a list of them,
`rollout_output` builds the dict a TRL `rollout_func` returns, `training_batch` the batch TRL's training
forward builds (prompts left-padded, completions right-padded, images in episode order,
`mm_token_type_ids` marking image placeholders), and `recompute_logprobs` the completion log-probs of
one training-style forward, to check that sampling-time log-probs are what training computes.
torch is imported inside functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

__all__ = ["EpisodeRollout", "recompute_logprobs", "rollout_output", "training_batch"]


@dataclass
class EpisodeRollout:
    """One finished episode, token-exact."""

    sample_id: str
    group_index: int
    prompt_ids: list[int]
    completion_ids: list[int]
    env_mask: list[int]
    logprobs: list[float]
    images: list[Image.Image]
    num_prompt_images: int
    pixel_values: list[torch.Tensor]
    image_grid_thw: list[torch.Tensor]
    reward: float = 0.0
    actions: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    turn_spans: list[tuple[int, int]] = field(default_factory=list)
    """(start, end) of each turn's sampled ids within completion_ids."""
    hit_length_limit: bool = False
    """Some turn ended at max_new_tokens rather than at an action tag or eos."""

    @property
    def policy_tokens(self) -> int:
        return sum(self.env_mask)


def rollout_output(episodes: Sequence[EpisodeRollout]) -> dict[str, list[Any]]:
    """The dict a TRL `rollout_func` returns: required `prompt_ids`, `completion_ids`, `logprobs`;
    `env_mask` (loss mask); `images` (every image of the episode, in placeholder order, routed by
    `grpo.MultiTurnGRPOTrainer`); and per-episode env results that TRL forwards to reward functions."""
    return {
        "prompt_ids": [list(e.prompt_ids) for e in episodes],
        "completion_ids": [list(e.completion_ids) for e in episodes],
        "logprobs": [list(e.logprobs) for e in episodes],
        "env_mask": [list(e.env_mask) for e in episodes],
        "images": [list(e.images) for e in episodes],
        "env_reward": [float(e.reward) for e in episodes],
        "env_score": [float(e.info.get("score", 0.0)) for e in episodes],
        "env_format": [float(e.info.get("format_score", 0)) for e in episodes],
        "env_searches": [int(e.info.get("searches", 0)) for e in episodes],
        "env_turns": [len(e.actions) for e in episodes],
        "sample_id": [e.sample_id for e in episodes],
        "actions": [list(e.actions) for e in episodes],
    }


def training_batch(episodes: Sequence[EpisodeRollout], pad_token_id: int, image_token_id: int) -> dict[str, Any]:
    """The batch TRL's training forward builds from these episodes: prompts left-padded, completions
    right-padded, images in episode order, `mm_token_type_ids` marking image placeholders."""
    import torch

    prompt_length = max(len(e.prompt_ids) for e in episodes)
    completion_length = max(len(e.completion_ids) for e in episodes)
    rows = len(episodes)
    input_ids = torch.full((rows, prompt_length + completion_length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row, episode in enumerate(episodes):
        start = prompt_length - len(episode.prompt_ids)
        end = prompt_length + len(episode.completion_ids)
        input_ids[row, start:end] = torch.tensor(episode.prompt_ids + episode.completion_ids, dtype=torch.long)
        attention_mask[row, start:end] = 1
    batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask,
                             "mm_token_type_ids": ((input_ids == image_token_id) & (attention_mask == 1)).to(torch.int)}
    if any(e.pixel_values for e in episodes):
        batch["pixel_values"] = torch.cat([pv for e in episodes for pv in e.pixel_values])
        batch["image_grid_thw"] = torch.cat([grid for e in episodes for grid in e.image_grid_thw])
    return {"batch": batch, "prompt_length": prompt_length, "completion_length": completion_length}


def recompute_logprobs(model: Any, episodes: Sequence[EpisodeRollout], *, pad_token_id: int, image_token_id: int,
                       temperature: float = 1.0) -> list[list[float]]:
    """Each episode's completion log-probs from one training-style forward (no cache), for checking
    that sampling-time log-probs are what training computes."""
    import torch

    built = training_batch(episodes, pad_token_id, image_token_id)
    batch = {key: value.to(next(model.parameters()).device) for key, value in built["batch"].items()}
    prompt_length, completion_length = built["prompt_length"], built["completion_length"]
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits.float()
    logits = logits[:, prompt_length - 1: prompt_length + completion_length - 1] / temperature
    targets = batch["input_ids"][:, prompt_length:]
    values = torch.log_softmax(logits, dim=-1).gather(2, targets.unsqueeze(-1)).squeeze(-1)
    return [values[row, :len(e.completion_ids)].tolist() for row, e in enumerate(episodes)]
