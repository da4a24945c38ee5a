"""The demo's two training stages, built from the trainers' public pieces (`benchmarks.demo`).

- SFT: the demonstrations' run directory is replayed in the demo's env (`sft.load_episodes`,
  `sft.trajectory_dataset`: images rebuilt and checked against the record) and trained with
  `sft.TrajectoryCollator` (loss on assistant text only) in `sft.TrajectorySFTTrainer`.
- GRPO: `grpo.MultiTurnGRPOTrainer` with `grpo_data.env_reward` (the env's reward, unchanged) and an
  `EnvRolloutFunc` that also writes one line per step to `curves.jsonl`: reward, accuracy, format
  rate and search ratio per question category of the step's rollouts (TRL's own log has no
  per-category numbers, and the demo's claim is about categories). With `explore > 0` the rollouts
  explore the turn-one action (`demo_probe.FirstActionExploration`, the reasons are there).

Both go through `config.SFTRunConfig` / `config.GRPORunConfig` and `sft.sft_config` /
`grpo.grpo_config`, so the TRL arguments are the ones `mmsearch-gym train sft|grpo` would use.
torch, transformers and trl are imported with this module.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Protocol

from mmsearch_gym.trainers.config import GRPORunConfig, SFTRunConfig
from mmsearch_gym.trainers.demo_probe import FirstActionExploration
from mmsearch_gym.trainers.grpo import (
    GRPO_METRIC_ALIASES,
    MultiTurnGRPOTrainer,
    grpo_config,
)
from mmsearch_gym.trainers.grpo_data import EnvRolloutFunc, env_reward, prompt_dataset
from mmsearch_gym.trainers.metrics_log import MetricsLogger
from mmsearch_gym.trainers.rollout import RolloutCollector
from mmsearch_gym.trainers.sampling import SamplingSettings
from mmsearch_gym.trainers.sft import (
    SFT_METRIC_ALIASES,
    TrajectoryCollator,
    TrajectorySFTTrainer,
    load_episodes,
    sft_config,
    trajectory_dataset,
)


class Demo(Protocol):
    """What the training stages read from the demo pipeline (`benchmarks.demo.Demo`, which also
    evaluates, so it lives above trainers): its `DemoConfig`, the regenerated suite (`.train` samples)
    and the env factory for rollouts."""

    @property
    def config(self) -> Any: ...

    @property
    def suite(self) -> Any: ...

    def make_env_factory(self, *args: Any, **kwargs: Any) -> Any: ...


def use_threads(threads: int) -> None:
    """Torch's intra-op threads for the whole demo (torch is imported only in trainers)."""
    import torch

    torch.set_num_threads(threads)


def run_sft(demo: Demo, base: Path, demonstrations: Path, out: Path) -> None:
    from mmsearch_gym.hf import load_processor

    c = demo.config
    config = SFTRunConfig(model=str(base), output_dir=str(out), run_dirs=[str(demonstrations)],
                          learning_rate=c.sft_learning_rate, num_train_epochs=c.sft_epochs, max_steps=-1,
                          per_device_train_batch_size=c.sft_batch_size, save_steps=10**6, save_total_limit=1,
                          logging_steps=5, seed=c.seed, device="cpu", bf16=False,
                          trl={"lr_scheduler_type": "cosine", "warmup_steps": 0.05, "weight_decay": 0.0})
    args = sft_config(config, use_cpu=True, bf16=False)
    dataset = trajectory_dataset(load_episodes(config.run_dirs), demo.make_env_factory(demo.suite.train))
    processor = load_processor(base)
    logger = MetricsLogger(out / config.metrics_file, aliases=SFT_METRIC_ALIASES)
    trainer = TrajectorySFTTrainer(model=str(base), args=args, train_dataset=dataset, processing_class=processor,
                                   data_collator=TrajectoryCollator(processor), callbacks=[logger])
    trainer.train()
    trainer.save_model(str(out))
    processor.save_pretrained(str(out))


class CurveRolloutFunc(EnvRolloutFunc):
    """`EnvRolloutFunc` that appends the step's per-category rollout metrics to a JSONL file."""

    def __init__(self, collector: RolloutCollector, categories: dict[str, str], path: Path,
                 exploration: FirstActionExploration | None = None) -> None:
        super().__init__(collector)
        self.categories = categories
        self.path = path
        self.exploration = exploration

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list[Any]]:
        output = super().__call__(prompts, trainer)
        groups: dict[str, list[int]] = defaultdict(list)
        for row, sample_id in enumerate(output["sample_id"]):
            groups[self.categories.get(sample_id, "uncategorised")].append(row)

        def mean(key: str, rows: list[int], transform: Any = float) -> float | None:
            return round(sum(transform(output[key][r]) for r in rows) / len(rows), 4) if rows else None

        every = list(range(len(output["sample_id"])))
        line: dict[str, Any] = {"step": int(trainer.state.global_step), "episodes": len(every),
                                "reward": mean("env_reward", every), "accuracy": mean("env_score", every),
                                "format_rate": mean("env_format", every),
                                "search_ratio": mean("env_searches", every, lambda n: float(n > 0))}
        if self.exploration is not None:
            line["explored_total"] = self.exploration.explored
        for category, rows in sorted(groups.items()):
            line[f"search_ratio/{category}"] = mean("env_searches", rows, lambda n: float(n > 0))
            line[f"accuracy/{category}"] = mean("env_score", rows)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(line, sort_keys=True) + "\n")
        return output


def run_grpo(demo: Demo, sft: Path, out: Path) -> None:
    from mmsearch_gym.hf import GenerationSettings, load_processor

    c = demo.config
    out.mkdir(parents=True, exist_ok=True)
    curves = out / "curves.jsonl"
    curves.unlink(missing_ok=True)
    generation = GenerationSettings(max_new_tokens=c.max_new_tokens, temperature=c.temperature)
    config = GRPORunConfig(model=str(sft), output_dir=str(out), learning_rate=c.grpo_learning_rate,
                           max_steps=c.grpo_steps, per_device_train_batch_size=c.grpo_prompts_per_step * c.num_generations,
                           save_steps=10**6, save_total_limit=1, logging_steps=1, seed=c.seed, device="cpu", bf16=False,
                           generation=generation, num_generations=c.num_generations, beta=c.beta,
                           trl={"lr_scheduler_type": "constant", "max_grad_norm": 1.0})
    args = grpo_config(config, use_cpu=True, bf16=False)
    processor = load_processor(sft)
    processor.tokenizer.padding_side = "left"
    train = demo.suite.train
    exploration = FirstActionExploration(processor.tokenizer, c.explore, c.seed) if c.explore > 0 else None
    collector = RolloutCollector(processor, demo.make_env_factory(train, c.penalty_warmup_steps),
                                 SamplingSettings.from_generation(generation), logits_processor_factory=exploration)
    rollout = CurveRolloutFunc(collector, {sample.id: sample.category for sample in train}, curves, exploration)
    logger = MetricsLogger(out / config.metrics_file, aliases=GRPO_METRIC_ALIASES)
    trainer = MultiTurnGRPOTrainer(model=str(sft), reward_funcs=[env_reward], args=args,
                                   train_dataset=prompt_dataset(train), processing_class=processor,
                                   callbacks=[logger], rollout_func=rollout)
    try:
        trainer.train()
    finally:
        collector.close()
    trainer.save_model(str(out))
    processor.save_pretrained(str(out))
