"""The GRPO dataset, the reward function and the `rollout_func` that plays the env for TRL.

- The dataset holds one row per sample: a conversational `prompt` (the question text, for logs) whose
  message carries the `sample_id`; TRL's sampler repeats each row `num_generations` times.
- `EnvRolloutFunc` (TRL's `rollout_func`) plays one episode per prompt with `rollout.RolloutCollector`
  and returns the `rollout_output` fields, which TRL hands to `env_reward` as keyword arguments.
- `env_reward` returns the env's reward unchanged; advantages are TRL's group-normalised ones.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from trl import GRPOTrainer
from trl.models import unwrap_model_for_generation

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.trainers.episodes import rollout_output
from mmsearch_gym.trainers.rollout import RolloutCollector

__all__ = ["SAMPLE_ID_KEY", "EnvRolloutFunc", "env_reward", "prompt_dataset", "prompt_for", "sample_id_of"]

SAMPLE_ID_KEY = "sample_id"
"""Key of the prompt message that names the env sample (TRL passes only prompts to rollout_func)."""


def prompt_for(sample: VQASample) -> list[dict[str, str]]:
    """The dataset prompt of a sample: its question (shown in TRL's logs) and its id (for the rollout)."""
    return [{"role": "user", "content": sample.question, SAMPLE_ID_KEY: sample.id}]


def sample_id_of(prompt: Any) -> str:
    try:
        value = prompt[0][SAMPLE_ID_KEY]
    except (TypeError, KeyError, IndexError):
        value = None
    if not isinstance(value, str):
        raise ValueError(f"prompt {str(prompt)[:200]!r} carries no {SAMPLE_ID_KEY!r}; build the dataset with "
                         "grpo.prompt_dataset(samples)")
    return value


def prompt_dataset(samples: Sequence[VQASample]):  # -> datasets.Dataset
    from datasets import Dataset

    if not samples:
        raise ValueError("the training dataset is empty")
    return Dataset.from_dict({"prompt": [prompt_for(sample) for sample in samples]})


def _mean(values: Sequence[float]) -> float:
    return float(sum(values)) / len(values) if values else 0.0


def env_reward(prompts: list, completions: list, env_reward: list[float] | None = None,
               env_score: list[float] | None = None, env_format: list[float] | None = None,
               env_searches: list[int] | None = None, env_turns: list[int] | None = None,
               log_metric: Callable[[str, float], None] | None = None, **kwargs: Any) -> list[float]:
    """TRL reward function: the environment's own reward for each episode (from the rollout), plus
    accuracy, search ratio, format rate and turns logged as metrics."""
    if env_reward is None:
        raise ValueError("env_reward needs the rollout's 'env_reward' field; train with EnvRolloutFunc")
    if len(env_reward) != len(prompts):
        raise ValueError(f"{len(env_reward)} env rewards for {len(prompts)} prompts")
    if log_metric is not None:
        log_metric("env/accuracy", _mean(env_score or []))
        log_metric("env/search_ratio", _mean([float(n > 0) for n in env_searches or []]))
        log_metric("env/searches_per_episode", _mean([float(n) for n in env_searches or []]))
        log_metric("env/format_rate", _mean(env_format or []))
        log_metric("env/turns", _mean([float(n) for n in env_turns or []]))
    return [float(value) for value in env_reward]


class EnvRolloutFunc:
    """TRL `rollout_func`: one env episode per prompt (TRL already repeats each prompt G times)."""

    def __init__(self, collector: RolloutCollector) -> None:
        self.collector = collector

    def __call__(self, prompts: list, trainer: GRPOTrainer) -> dict[str, list[Any]]:
        sampling_temperature = self.collector.sampling.logprob_temperature
        if abs(float(trainer.temperature) - sampling_temperature) > 1e-12:
            raise ValueError(f"the rollout samples at temperature {sampling_temperature} but the trainer scores at "
                             f"{trainer.temperature}; the log-probs would disagree")
        requests: list[tuple[str, int]] = []
        seen: dict[str, int] = {}
        for prompt in prompts:  # TRL lists each prompt's G copies; number them within their group
            sample_id = sample_id_of(prompt)
            requests.append((sample_id, seen.get(sample_id, 0)))
            seen[sample_id] = seen.get(sample_id, 0) + 1
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
                                         gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
                                         ) as model:
            episodes = self.collector.collect_requests(model, requests, training_step=int(trainer.state.global_step))
        output = rollout_output(episodes)
        output["clipped"] = [e.hit_length_limit for e in episodes]
        return output
