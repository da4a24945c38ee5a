"""Supervised fine-tuning on recorded trajectories (e.g. an oracle's evaluation run) with TRL's SFTTrainer.

Why replay: a run directory's `episodes.jsonl` records each episode's actions and messages but only
digests of its images (thumbnails are not stored twice). Replaying the actions in the same env (same
dataset, same search) rebuilds the exact observation, images included; the replay is checked against
the record (messages and image digests), so a changed dataset or search cache fails loudly instead
of training on other pictures.

Masking: each example is tokenised the way the rollout builds a dialog (`dialog.DialogTokenizer.
trajectory`): prompt, then per assistant turn its text ids (trained) and the end-of-turn token
(not trained: at sampling time the turn ends at the action tag and the template closes it), then each
search-results turn rendered alone (not trained, image placeholders included). Labels are -100
everywhere but on assistant text. TRL's `assistant_only_loss` would need `{% generation %}` markers
in the chat template, which Qwen2.5-VL's lacks; the collator does the masking instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import gymnasium as gym
import torch
from trl import SFTConfig, SFTTrainer

from mmsearch_gym.runs import RECORDS_FILE, RecordsFile
from mmsearch_gym.search.keys import image_digest
from mmsearch_gym.trainers.checkpoints import ConvertedCheckpointMixin
from mmsearch_gym.trainers.config import ConfigError, SFTRunConfig
from mmsearch_gym.trainers.dialog import DialogTokenizer


def load_episodes(run_dirs: Iterable[str | Path], min_reward: float | None = None) -> list[dict[str, Any]]:
    """Episode records of the run directories, without failed episodes (and below `min_reward`)."""
    records: list[dict[str, Any]] = []
    for run_dir in run_dirs:
        path = Path(run_dir) / RECORDS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{str(run_dir)!r} has no {RECORDS_FILE}; is it an evaluation run directory?")
        for record in RecordsFile(path).ordered():
            if record.get("error") or not record.get("actions"):
                continue
            if min_reward is not None and float(record.get("reward", 0.0)) < min_reward:
                continue
            records.append(record)
    return records


def replay(env: gym.Env, record: dict[str, Any]) -> dict[str, Any]:
    """The final observation of a recorded episode, rebuilt by replaying its actions; checked against
    the record's messages and image digests."""
    where = f"episode {record.get('index')} ({record.get('sample_id')!r})"
    obs, _ = env.reset(options={"sample_id": record["sample_id"]})
    done = False
    for turn, action in enumerate(record["actions"]):
        if done:
            raise ValueError(f"{where}: the env ended the episode before action {turn}; the recording does not "
                             "match this env (dataset, search or env settings differ)")
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    if "messages" in record and json.loads(json.dumps(list(obs["messages"]))) != record["messages"]:
        raise ValueError(f"{where}: replayed messages differ from the recorded ones (different search results?)")
    digests = record.get("image_digests")
    if digests is not None and [image_digest(image) for image in obs["images"]] != digests:
        raise ValueError(f"{where}: replayed images differ from the recorded ones (different dataset or cache?)")
    return obs


def trajectory_dataset(records: Sequence[dict[str, Any]], make_env: Callable[[], gym.Env]):  # -> datasets.Dataset
    """One row per episode: `messages` (the env's messages as JSON), `images` (PIL), `sample_id`."""
    from datasets import Dataset

    from mmsearch_gym.hf.messages import to_pil

    if not records:
        raise ValueError("no episodes to train on (all failed, or none reached min_reward)")
    env = make_env()
    rows: dict[str, list[Any]] = {"messages": [], "images": [], "sample_id": []}
    for record in records:
        obs = replay(env, record)
        rows["messages"].append(json.dumps(list(obs["messages"])))
        rows["images"].append([to_pil(image) for image in obs["images"]])
        rows["sample_id"].append(record["sample_id"])
    env.close()
    return Dataset.from_dict(rows)


class TrajectoryCollator:
    """Batches trajectory rows into model inputs with labels only on assistant text (see module doc).

    Output: input_ids, attention_mask (right-padded), labels, mm_token_type_ids, pixel_values,
    image_grid_thw. The image-placeholder count is checked against the image features per example.
    """

    def __init__(self, processor: Any, max_length: int | None = None) -> None:
        self.dialog = DialogTokenizer(processor)
        self.pad_token_id = self.dialog.tokenizer.pad_token_id
        if self.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token")
        self.max_length = max_length

    def example(self, row: dict[str, Any]) -> tuple[list[int], list[int], list[torch.Tensor], list[torch.Tensor]]:
        messages = json.loads(row["messages"]) if isinstance(row["messages"], str) else row["messages"]
        prompt, completion, mask = self.dialog.trajectory({"images": row["images"], "messages": messages})
        ids = prompt.ids + completion.ids
        labels = [-100] * len(prompt.ids) + [token if keep else -100 for token, keep in zip(completion.ids, mask)]
        grids = prompt.image_grid_thw + completion.image_grid_thw
        if self.max_length is not None and len(ids) > self.max_length:
            raise ValueError(f"example {row.get('sample_id')!r} has {len(ids)} tokens > max_length {self.max_length}; "
                             "cutting it would cut image placeholders from their features")
        self.dialog.check_image_tokens(ids, grids)
        return ids, labels, prompt.pixel_values + completion.pixel_values, grids

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        built = [self.example(row) for row in rows]
        length = max(len(ids) for ids, _, _, _ in built)
        input_ids = torch.full((len(built), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(built), length), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(built), length), dtype=torch.long)
        for row, (ids, row_labels, _, _) in enumerate(built):
            input_ids[row, :len(ids)] = torch.tensor(ids)
            labels[row, :len(ids)] = torch.tensor(row_labels)
            attention_mask[row, :len(ids)] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                 "mm_token_type_ids": ((input_ids == self.dialog.image_token_id) & (attention_mask == 1)).to(torch.int)}
        pixel_values = [pv for _, _, pvs, _ in built for pv in pvs]
        if pixel_values:
            batch["pixel_values"] = torch.cat(pixel_values)
            batch["image_grid_thw"] = torch.cat([grid for _, _, _, grids in built for grid in grids])
        return batch


class TrajectorySFTTrainer(ConvertedCheckpointMixin, SFTTrainer):
    """SFTTrainer whose resumption loads checkpoint weights through `from_pretrained` (checkpoints.py)."""


def sft_config(config: SFTRunConfig, use_cpu: bool, bf16: bool) -> SFTConfig:
    import dataclasses

    known = {f.name for f in dataclasses.fields(SFTConfig)}
    unknown = sorted(set(config.trl) - known)
    if unknown:
        raise ConfigError(f"trl: unknown SFTConfig field(s) {unknown}")
    values: dict[str, Any] = dict(
        output_dir=config.output_dir, learning_rate=config.learning_rate, max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs, per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, save_strategy="steps",
        save_steps=config.save_steps, save_total_limit=config.save_total_limit, logging_steps=config.logging_steps,
        seed=config.seed, use_cpu=use_cpu, bf16=bf16, gradient_checkpointing=config.gradient_checkpointing,
        remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True}, max_length=None,
        report_to="none", dataloader_num_workers=0,
    )
    values.update(config.trl)
    return SFTConfig(**values)


def build_sft_trainer(config: SFTRunConfig, *, callbacks: Sequence[Any] = ()) -> TrajectorySFTTrainer:
    """A ready SFTTrainer on `config.run_dirs`' episodes, replayed in `config.env`."""
    from mmsearch_gym.hf import load_processor
    from mmsearch_gym.trainers.environment import make_env_factory
    from mmsearch_gym.trainers.runs import model_and_args

    model_dir, args = model_and_args(config, sft_config)
    factory, _ = make_env_factory(config.env)
    dataset = trajectory_dataset(load_episodes(config.run_dirs, config.min_reward), factory)
    processor = load_processor(model_dir)
    return TrajectorySFTTrainer(model=str(model_dir), args=args, train_dataset=dataset, processing_class=processor,
                                data_collator=TrajectoryCollator(processor), callbacks=list(callbacks))


SFT_METRIC_ALIASES = {"loss": "loss", "token_accuracy": "mean_token_accuracy", "entropy": "entropy",
                      "learning_rate": "learning_rate"}


def train_sft(config: SFTRunConfig) -> Path:
    """Train, checkpointing and logging per-step metrics; resumes per `config.resume`."""
    from mmsearch_gym.trainers.runs import run_training

    return run_training(config, "sft", SFT_METRIC_ALIASES, lambda callbacks: build_sft_trainer(config,
                                                                                              callbacks=callbacks))
