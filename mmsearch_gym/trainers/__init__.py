"""Trainers: multi-turn rollouts with exact loss masks, GRPO and SFT through TRL.

Modules (import what you need; this package imports nothing heavy by itself, so `import
mmsearch_gym.trainers` never pulls in torch):

- `config`: run configurations (dataclasses) and strict YAML loading.
- `environment`: env factories from a config; synthetic samples with in-memory search.
- `dialog`: token-level, turn-by-turn rendering of env dialogs with a VLM processor.
- `sampling`: `SamplingSettings` (`hf.GenerationSettings` plus stop strings and vision-token suppression).
- `rollout`: `RolloutCollector` (G episodes per sample: ids, masks, log-probs, images, rewards).
- `episodes`: `EpisodeRollout` and the batches built from episodes (TRL's rollout output, training forward).
- `grpo`: `MultiTurnGRPOTrainer`, `train_grpo`; `grpo_data`: the dataset, `env_reward`, `EnvRolloutFunc`;
  `trl_internals`: the check of the TRL internals the trainer relies on.
- `env_tools`: the env as TRL tools for `GRPOTrainer(environment_factory=...)`.
- `sft`: SFT on recorded trajectories (`train_sft`).
- `metrics_log`, `runs`: per-step JSONL metrics, resumption, run records.
- `tiny_model`: an offline tiny Qwen2.5-VL for smoke runs.

Names listed in `__all__` resolve lazily: `from mmsearch_gym.trainers import RolloutCollector` imports
only `trainers.rollout` (and torch only when a rollout runs).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConfigError": "config", "EnvConfig": "config", "GRPORunConfig": "config", "SFTRunConfig": "config",
    "SynthConfig": "config", "GenerationSettings": "config", "load_config": "config",
    "make_env_factory": "environment", "synth_world_search": "environment",
    "DialogTokenizer": "dialog",
    "EpisodeRollout": "episodes", "RolloutCollector": "rollout", "SamplingSettings": "sampling",
    "rollout_output": "episodes",
    "EnvRolloutFunc": "grpo_data", "MultiTurnGRPOTrainer": "grpo", "env_reward": "grpo_data", "train_grpo": "grpo",
    "verify_trl_internals": "trl_internals",
    "EnvironmentFactory": "env_tools", "ImageSearchToolEnv": "env_tools", "tool_dataset": "env_tools",
    "training_step_callback": "env_tools",
    "TrajectoryCollator": "sft", "train_sft": "sft",
    "MetricsLogger": "metrics_log",
    "build_tiny_vlm": "tiny_model",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmsearch_gym.trainers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"mmsearch_gym.trainers.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
