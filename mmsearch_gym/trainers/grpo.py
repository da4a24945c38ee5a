"""Multi-turn GRPO on the environment through TRL (`GRPOTrainer` + `rollout_func`).

How the pieces fit (measured facts: docs/trl-multiturn-vlm.md):

- The dataset, the reward and the `rollout_func` live in `grpo_data` (re-exported here):
  `EnvRolloutFunc` plays one episode per prompt with `rollout.RolloutCollector` and returns
  `prompt_ids`, `completion_ids`, `logprobs`, `env_mask` (TRL's loss mask: 1 only on sampled ids),
  `images`, and the env results, which TRL hands to `env_reward`. The reward TRL optimises is the env's
  reward, unchanged; advantages are TRL's group-normalised ones.
- Thumbnails inside the completion: stock TRL handles images in completions only on its tool-calling
  path (it re-processes prompt images + tool images in order and rebuilds `mm_token_type_ids` from the
  placeholder ids). `MultiTurnGRPOTrainer` overrides the private `_generate` to return the rollout's
  images there, and marks the trainer as having tools while TRL scores a batch so that branch runs.
  `trl_internals.verify_trl_internals()` checks at construction that the code we rely on still has the expected
  shape (TRL is pinned to >=1.16,<1.17; the check makes a silent break impossible).
- Before every training forward the placeholder count is checked against the image features: if
  they disagree TRL would silently drop all images of the batch and train text-only.
- The env's search-penalty warm-up follows the trainer: each rollout sets
  `env.unwrapped.training_step = trainer.state.global_step`.

torch/transformers/trl are imported when this module is imported: import it only to train.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from trl import GRPOConfig, GRPOTrainer

from mmsearch_gym.trainers.checkpoints import ConvertedCheckpointMixin
from mmsearch_gym.trainers.config import ConfigError, GRPORunConfig
from mmsearch_gym.trainers.grpo_data import (  # noqa: F401 - re-exported (public import path)
    SAMPLE_ID_KEY,
    EnvRolloutFunc,
    env_reward,
    prompt_dataset,
    prompt_for,
    sample_id_of,
)
from mmsearch_gym.trainers.rollout import RolloutCollector
from mmsearch_gym.trainers.sampling import LogitsProcessorFactory, SamplingSettings
from mmsearch_gym.trainers.trl_internals import TRL_RANGE, verify_trl_internals  # noqa: F401 - re-exported

ROLLOUT_KEYS = ("prompt_ids", "completion_ids", "logprobs", "env_mask", "images")


# ---------------------------------------------------------------------------------------- trainer

def _route_completion_images() -> None:
    """Marker in `trainer.tools` while TRL scores a batch, so TRL's tool-image branch processes the
    rollout's images (prompt images then completion images, in order). Never called."""


class MultiTurnGRPOTrainer(ConvertedCheckpointMixin, GRPOTrainer):
    """`GRPOTrainer` for multi-turn VLM rollouts whose completions contain images.

    Takes the GRPOTrainer arguments with a `rollout_func` returning the `ROLLOUT_KEYS` (e.g.
    `EnvRolloutFunc`) and no `tools`/`environment_factory`. Extra arguments:
        check_logprobs: after each rollout, recompute the policy's log-probs with TRL's forward and
            log the largest difference from the sampled ones (`sampling/logp_diff_max`).
        logprob_tolerance: with check_logprobs, a larger difference raises.
    """

    def __init__(self, *args: Any, check_logprobs: bool = False, logprob_tolerance: float = 1e-3,
                 **kwargs: Any) -> None:
        verify_trl_internals()
        if kwargs.get("tools") or kwargs.get("environment_factory"):
            raise ValueError("MultiTurnGRPOTrainer plays the env through rollout_func; for TRL's own tool calling use "
                             "GRPOTrainer(environment_factory=env_tools.make_environment_factory(...))")
        if kwargs.get("rollout_func") is None:
            raise ValueError("MultiTurnGRPOTrainer needs rollout_func= (e.g. EnvRolloutFunc(collector))")
        super().__init__(*args, **kwargs)
        if not self._is_vlm:
            raise ValueError("MultiTurnGRPOTrainer needs a vision-language processor as processing_class")
        self.check_logprobs = check_logprobs
        self.logprob_tolerance = logprob_tolerance
        self.image_checks = 0
        """How many training forwards had their image placeholders checked."""
        self.last_logp_diff: float | None = None
        self._image_token_id = self._image_pad_token_id
        self._merge = int(getattr(self.processing_class.image_processor, "merge_size", 2)) ** 2

    # ----------------------------------------------------------------------------------- generate

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        original = self.tools
        self.tools = [_route_completion_images]
        try:
            output = super()._generate_and_score_completions(inputs)
        finally:
            self.tools = original
        if self.check_logprobs:
            self._check_sampling_logprobs(output)
        return output

    def _generate(self, prompts: list) -> tuple:
        device = self.accelerator.device
        mode = "train" if self.model.training else "eval"
        output = self.rollout_func(copy.deepcopy(prompts), self)
        missing = [key for key in ROLLOUT_KEYS if key not in output]
        if missing:
            raise ValueError(f"rollout_func must return {list(ROLLOUT_KEYS)}; missing {missing}")
        for key, values in output.items():
            if isinstance(values, list) and len(values) != len(prompts):
                raise ValueError(f"rollout_func returned {len(values)} {key!r} entries for {len(prompts)} prompts")
        prompt_ids, completion_ids, logprobs = output["prompt_ids"], output["completion_ids"], output["logprobs"]
        env_mask, images = output["env_mask"], output["images"]
        for row, (ids, mask, lps) in enumerate(zip(completion_ids, env_mask, logprobs)):
            if not len(ids) == len(mask) == len(lps):
                raise ValueError(f"episode {row}: {len(ids)} completion ids, {len(mask)} mask values, "
                                 f"{len(lps)} logprobs")
        clipped = output.get("clipped", [False] * len(prompts))
        extra_fields = {key: value for key, value in output.items() if key not in ROLLOUT_KEYS and key != "clipped"}
        texts = self._tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        completions = [[{"role": "assistant", "content": text}] for text in texts]

        # the metrics TRL's own _generate logs (policy tokens only: the env_mask is the loss mask)
        prompt_lengths = torch.tensor([len(ids) for ids in prompt_ids], device=device)
        lengths = torch.tensor([sum(mask) for mask in env_mask], device=device)
        all_lengths = self.accelerator.gather(lengths).float()
        if mode == "train":
            total = self.accelerator.gather(prompt_lengths).sum() + self.accelerator.gather(
                torch.tensor([len(ids) for ids in completion_ids], device=device)).sum()
            self.state.num_input_tokens_seen += total.item()
        self._metrics[mode]["num_tokens"] = [self.state.num_input_tokens_seen]
        self._metrics[mode]["completions/mean_length"].append(all_lengths.mean().item())
        self._metrics[mode]["completions/min_length"].append(all_lengths.min().item())
        self._metrics[mode]["completions/max_length"].append(all_lengths.max().item())
        all_clipped = self.accelerator.gather(torch.tensor(clipped, device=device, dtype=torch.float))
        self._metrics[mode]["completions/clipped_ratio"].append(all_clipped.mean().item())

        if not any(images):
            return prompt_ids, completion_ids, env_mask, completions, logprobs, extra_fields, None, []
        images = [list(episode_images) for episode_images in images]
        return prompt_ids, completion_ids, env_mask, completions, logprobs, extra_fields, images, \
            [list(episode_images) for episode_images in images]

    # ----------------------------------------------------------------------------------- checks

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                           logits_to_keep: int, *args: Any, **kwargs: Any) -> tuple:
        self._check_image_tokens(input_ids, attention_mask, kwargs)
        return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                          *args, **kwargs)

    def _check_image_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, kwargs: dict) -> None:
        """Placeholders per sample must equal that sample's image features, and mm_token_type_ids must
        mark exactly the placeholders; else TRL/the model would silently train on the wrong thing."""
        placeholders = (input_ids == self._image_token_id) & attention_mask.bool()
        counts = placeholders.sum(dim=1).tolist()
        grids, num_images = kwargs.get("image_grid_thw"), kwargs.get("num_images")
        if not any(counts):
            self.image_checks += 1
            return
        if grids is None or kwargs.get("pixel_values") is None or num_images is None:
            raise RuntimeError(f"image placeholders {counts} in the batch but no images were passed to the forward "
                               "(TRL drops every image when counts mismatch)")
        per_image = (grids.prod(dim=-1) // self._merge).tolist()
        if len(per_image) != sum(num_images):
            raise RuntimeError(f"{len(per_image)} image grids for num_images={num_images}")
        offset = 0
        for row, (count, n) in enumerate(zip(counts, num_images)):
            features = sum(per_image[offset:offset + n])
            offset += n
            if count != features:
                raise RuntimeError(f"sample {row}: {count} image placeholder tokens but {n} image(s) with {features} "
                                   "features")
        rows = int(grids.prod(dim=-1).sum())
        if kwargs["pixel_values"].shape[0] != rows:
            raise RuntimeError(f"pixel_values has {kwargs['pixel_values'].shape[0]} rows, the grids need {rows}")
        mm_ids = kwargs.get("mm_token_type_ids")
        if mm_ids is None or not torch.equal(mm_ids.bool(), placeholders):
            raise RuntimeError("mm_token_type_ids does not mark exactly the image placeholders")
        self.image_checks += 1

    def _check_sampling_logprobs(self, output: dict[str, Any]) -> None:
        sampled = output.get("sampling_per_token_logps")
        if sampled is None:
            return
        input_ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
        attention_mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
        with torch.no_grad():
            logps, _, _ = self._get_per_token_logps_and_entropies(
                self.model, input_ids, attention_mask, output["completion_ids"].size(1),
                batch_size=self.args.per_device_train_batch_size, pixel_values=output.get("pixel_values"),
                image_grid_thw=output.get("image_grid_thw"), num_images=output.get("num_images"),
                mm_token_type_ids=output.get("mm_token_type_ids"))
        mask = output["completion_mask"].bool()
        if "tool_mask" in output:
            mask &= output["tool_mask"].bool()
        difference = (logps - sampled).abs()[mask]
        value = float(difference.max()) if difference.numel() else 0.0
        value = float(self.accelerator.gather(torch.tensor([value], device=logps.device)).max())
        self.last_logp_diff = value
        self._metrics["train" if self.model.training else "eval"]["sampling/logp_diff_max"].append(value)
        if value > self.logprob_tolerance:
            raise RuntimeError(f"sampled and recomputed log-probs differ by {value:.3g} (> {self.logprob_tolerance}); "
                               "the rollout's ids, images or positions do not match the training forward")


# ------------------------------------------------------------------------------------------ runs

def grpo_config(config: GRPORunConfig, use_cpu: bool, bf16: bool) -> GRPOConfig:
    """TRL's GRPOConfig for a run config (extra `trl:` fields checked against GRPOConfig)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(set(config.trl) - known)
    if unknown:
        raise ConfigError(f"trl: unknown GRPOConfig field(s) {unknown}")
    generation = config.generation
    values: dict[str, Any] = dict(
        output_dir=config.output_dir, learning_rate=config.learning_rate, max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, num_generations=config.num_generations,
        beta=config.beta, epsilon=config.epsilon, num_iterations=config.num_iterations,
        scale_rewards=config.scale_rewards, loss_type=config.loss_type,
        temperature=generation.temperature, top_p=generation.top_p, top_k=generation.top_k,
        repetition_penalty=generation.repetition_penalty, max_completion_length=generation.max_new_tokens,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=config.save_total_limit,
        logging_steps=config.logging_steps, seed=config.seed, use_cpu=use_cpu, bf16=bf16,
        gradient_checkpointing=config.gradient_checkpointing, disable_dropout=True, remove_unused_columns=False,
        report_to="none", log_completions=False, dataloader_num_workers=0,
    )
    values.update(config.trl)
    return GRPOConfig(**values)


def build_grpo_trainer(config: GRPORunConfig, *, callbacks: Sequence[Any] = (),
                       logits_processor_factory: LogitsProcessorFactory | None = None) -> MultiTurnGRPOTrainer:
    """A ready `MultiTurnGRPOTrainer` for `config` (model loaded from `config.model`)."""
    from mmsearch_gym.hf import load_processor
    from mmsearch_gym.trainers.environment import make_env_factory
    from mmsearch_gym.trainers.runs import model_and_args

    model_dir, args = model_and_args(config, grpo_config)
    factory, samples = make_env_factory(config.env)
    processor = load_processor(model_dir)
    processor.tokenizer.padding_side = "left"
    collector = RolloutCollector(processor, factory, SamplingSettings.from_generation(config.generation),
                                 logits_processor_factory=logits_processor_factory)
    return MultiTurnGRPOTrainer(
        model=str(model_dir), reward_funcs=[env_reward], args=args, train_dataset=prompt_dataset(samples),
        processing_class=processor, callbacks=list(callbacks), rollout_func=EnvRolloutFunc(collector),
        check_logprobs=config.check_logprobs, logprob_tolerance=config.logprob_tolerance)


GRPO_METRIC_ALIASES = {
    "reward": "reward", "accuracy": "env/accuracy", "search_ratio": "env/search_ratio",
    "format_rate": "env/format_rate", "kl": "kl", "response_length": "completions/mean_length",
}
"""Canonical metric names in metrics.jsonl and on the console → TRL/our log keys."""


def train_grpo(config: GRPORunConfig, *, logits_processor_factory: LogitsProcessorFactory | None = None,
               on_trainer: Callable[[MultiTurnGRPOTrainer], None] | None = None) -> Path:
    """Train, checkpointing and logging per-step metrics; resumes per `config.resume`. Returns the
    output directory (final model and processor saved there). `on_trainer` sees the trainer before
    training starts (to add callbacks or instrumentation)."""
    from mmsearch_gym.trainers.runs import run_training

    def build(callbacks: Sequence[Any]) -> MultiTurnGRPOTrainer:
        return build_grpo_trainer(config, callbacks=callbacks, logits_processor_factory=logits_processor_factory)

    return run_training(config, "grpo", GRPO_METRIC_ALIASES, build, on_trainer)
