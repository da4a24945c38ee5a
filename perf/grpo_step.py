"""One multi-turn GRPO step (MultiTurnGRPOTrainer playing the env) against TRL's own single-turn GRPO
step, on the same model, batch and number of completion tokens; and where the multi-turn step's time
goes (generation, env, training forward/backward).

    python perf/grpo_step.py --demo-dir runs/demo [--steps 3] [--prompts 8] [--generations 8]

Needs a finished demo directory (`mmsearch-gym train demo --out runs/demo`): its SFT checkpoint is the
policy (a random model would end every episode on turn one), its suite and corpus the env.

How the comparison is made fair: both trainers get the same model, the same `GRPOConfig` (batch,
group size, learning rate, no KL) and the same prompts (the question with its image). TRL's step
generates exactly L tokens per completion (`min_new_tokens = max_completion_length = L`), where L is
the multi-turn step's mean completion length, env tokens included (those are what the training
forward/backward processes); the multi-turn step samples fewer tokens and prefills the env's results
turn by turn, so TRL is also timed with L = the multi-turn policy's sampled tokens (its generation
then does as many decoding steps). The first step of each trainer is a warm-up and is not counted.
Prints both ratios (target <= 1.5x) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any


class StepTimer:
    """TrainerCallback: wall time of each optimizer step (rollout/generation included)."""

    def __init__(self) -> None:
        from transformers import TrainerCallback

        timer = self
        self.times: list[float] = []

        class _Callback(TrainerCallback):
            def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                timer._start = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                timer.times.append(time.perf_counter() - timer._start)

        self.callback = _Callback()
        self._start = 0.0


def timed_env_factory(factory: Any, totals: dict[str, float]) -> Any:
    """Envs whose `step` and `reset` time is added to totals["env"]."""
    def make() -> Any:
        env = factory()
        for name in ("step", "reset"):
            original = getattr(env, name)

            def wrapped(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
                begin = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    totals["env"] += time.perf_counter() - begin
            setattr(env, name, wrapped)
        return env
    return make


def multi_turn(demo: Any, model_dir: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from mmsearch_gym.hf import GenerationSettings, load_processor
    from mmsearch_gym.trainers.config import GRPORunConfig
    from mmsearch_gym.trainers.grpo import MultiTurnGRPOTrainer, grpo_config
    from mmsearch_gym.trainers.grpo_data import (
        EnvRolloutFunc,
        env_reward,
        prompt_dataset,
    )
    from mmsearch_gym.trainers.rollout import RolloutCollector
    from mmsearch_gym.trainers.sampling import SamplingSettings

    totals = {"env": 0.0}
    calls: list[tuple[float, float]] = []  # (rollout seconds, env seconds) per step
    lengths: list[int] = []
    sampled: list[int] = []

    class Timed(EnvRolloutFunc):
        def __call__(self, prompts: list, trainer: Any) -> dict[str, list[Any]]:
            begin, env_before = time.perf_counter(), totals["env"]
            output = super().__call__(prompts, trainer)
            calls.append((time.perf_counter() - begin, totals["env"] - env_before))
            lengths.extend(len(ids) for ids in output["completion_ids"])
            sampled.extend(sum(mask) for mask in output["env_mask"])
            return output

    generation = GenerationSettings(max_new_tokens=demo.config.max_new_tokens, temperature=1.0)
    config = GRPORunConfig(model=str(model_dir), output_dir=str(out / "multi"), learning_rate=1e-5,
                           max_steps=args.steps, per_device_train_batch_size=args.prompts * args.generations,
                           num_generations=args.generations, save_steps=10**6, logging_steps=1, device="cpu",
                           bf16=False, generation=generation, trl={"save_strategy": "no"})
    processor = load_processor(model_dir)
    processor.tokenizer.padding_side = "left"
    collector = RolloutCollector(processor, timed_env_factory(demo.make_env_factory(demo.suite.train), totals),
                                 SamplingSettings.from_generation(generation))
    timer = StepTimer()
    trainer = MultiTurnGRPOTrainer(model=str(model_dir), reward_funcs=[env_reward],
                                   args=grpo_config(config, use_cpu=True, bf16=False),
                                   train_dataset=prompt_dataset(demo.suite.train), processing_class=processor,
                                   callbacks=[timer.callback], rollout_func=Timed(collector))
    trainer.train()
    collector.close()
    step = statistics.mean(timer.times[1:])
    rollout = statistics.mean(seconds for seconds, _ in calls[1:])
    env = statistics.mean(seconds for _, seconds in calls[1:])
    return {"step_s": step, "rollout_s": rollout, "env_s": env, "generation_s": rollout - env,
            "train_s": step - rollout, "completion_tokens": statistics.mean(lengths),
            "sampled_tokens": statistics.mean(sampled), "steps_timed": len(timer.times) - 1}


def single_turn(demo: Any, model_dir: Path, args: argparse.Namespace, out: Path, length: int) -> dict[str, Any]:
    from datasets import Dataset
    from PIL import Image
    from trl import GRPOConfig, GRPOTrainer

    from mmsearch_gym.hf import load_processor

    def zero_reward(completions: list, **kwargs: Any) -> list[float]:
        return [float(i % 2) for i in range(len(completions))]  # non-constant: advantages are not all zero

    samples = demo.suite.train[: args.prompts * (args.steps + 1)]
    dataset = Dataset.from_dict({
        "prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": sample.question}]}]
                   for sample in samples],
        "image": [Image.fromarray(sample.rgb()) for sample in samples],
    })
    processor = load_processor(model_dir)
    processor.tokenizer.padding_side = "left"
    config = GRPOConfig(output_dir=str(out / "single"), learning_rate=1e-5, max_steps=args.steps,
                        per_device_train_batch_size=args.prompts * args.generations, num_generations=args.generations,
                        max_completion_length=length, temperature=1.0, beta=0.0, use_cpu=True, bf16=False,
                        save_strategy="no", logging_steps=1, report_to="none", loss_type="dapo",
                        generation_kwargs={"min_new_tokens": length}, remove_unused_columns=False,
                        dataloader_num_workers=0)
    timer = StepTimer()
    trainer = GRPOTrainer(model=str(model_dir), reward_funcs=[zero_reward], args=config, train_dataset=dataset,
                          processing_class=processor, callbacks=[timer.callback])
    trainer.train()
    steps = timer.times[1:]
    return {"step_s": statistics.mean(steps), "completion_tokens": length, "steps_timed": len(steps)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("runs/demo"))
    parser.add_argument("--steps", type=int, default=3, help="Steps per trainer (the first is a warm-up).")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("/tmp/mmsearch-perf-grpo"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (as the demo; 1 on a shared machine)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is a warm-up)")
    model_dir = args.demo_dir / "sft"
    if not (model_dir / ".complete").is_file():
        print(f"error: {str(args.demo_dir)!r} holds no finished demo SFT stage; run "
              f"`mmsearch-gym train demo --out {args.demo_dir}` first", file=sys.stderr)
        return 2
    import torch

    from mmsearch_gym.benchmarks.demo import Demo, DemoConfig

    torch.set_num_threads(args.threads)

    settings = json.loads((args.demo_dir / "results.json").read_text())["config"] \
        if (args.demo_dir / "results.json").is_file() else {}
    config = DemoConfig(**{k: v for k, v in settings.items() if k not in ("suite",)}) if settings else DemoConfig()
    demo = Demo(args.demo_dir, config, log=lambda _: None)
    multi = multi_turn(demo, model_dir, args, args.out)
    length = max(1, round(multi["completion_tokens"]))
    single = single_turn(demo, model_dir, args, args.out, length)
    sampled_length = max(1, round(multi["sampled_tokens"]))
    single_sampled = single_turn(demo, model_dir, args, args.out, sampled_length)
    ratio = multi["step_s"] / single["step_s"]
    print(f"multi-turn GRPO step: {multi['step_s']:.2f} s (generation {multi['generation_s']:.2f} s, env "
          f"{multi['env_s']:.2f} s, training forward/backward {multi['train_s']:.2f} s); "
          f"{multi['completion_tokens']:.0f} completion tokens per episode, {multi['sampled_tokens']:.0f} sampled")
    print(f"TRL single-turn GRPO step: {single['step_s']:.2f} s with {length} completion tokens per episode")
    print(f"TRL single-turn GRPO step: {single_sampled['step_s']:.2f} s with {sampled_length} completion tokens "
          "per episode (as many as the multi-turn policy samples)")
    print(f"ratio multi/single: {ratio:.2f}x at equal completion length (target <= 1.5x); "
          f"{multi['step_s'] / single_sampled['step_s']:.2f}x at equal sampled tokens")
    print(json.dumps({"multi_turn": multi, "single_turn": single, "single_turn_sampled": single_sampled, "ratio": ratio,
                      "ratio_sampled": multi["step_s"] / single_sampled["step_s"],
                      "batch": args.prompts * args.generations, "group_size": args.generations}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
