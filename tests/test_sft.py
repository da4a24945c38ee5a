"""SFT on recorded trajectories: replay, masking identical to the rollout's, TRL SFTTrainer via the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from safetensors.torch import load_file  # noqa: E402
from tiny_vlm_small_vocab import build_small_vocab_vlm, forcing_factory, oracle_script, synth_env  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mmsearch_gym.commands.train import app  # noqa: E402
from mmsearch_gym.hf import load_processor  # noqa: E402
from mmsearch_gym.trainers.metrics_log import read_metrics  # noqa: E402
from mmsearch_gym.trainers.rollout import RolloutCollector, SamplingSettings  # noqa: E402
from mmsearch_gym.trainers.sft import TrajectoryCollator, load_episodes, replay, trajectory_dataset  # noqa: E402

SYNTH_YAML = "env:\n  synth: {n_entities: 3, n_questions: 6}\n  top_k: 2\n"


@pytest.fixture(scope="session")
def small_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_vocab_vlm(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def oracle_run(small_vlm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config file, oracle run directory) recorded through the CLI."""
    folder = tmp_path_factory.mktemp("sft")
    config = folder / "sft.yaml"
    run_dir = folder / "oracle-run"
    config.write_text(f"model: {small_vlm}\noutput_dir: {folder / 'sft-out'}\nrun_dirs: [{run_dir}]\n"
                      f"max_steps: 3\nper_device_train_batch_size: 2\nlearning_rate: 0.005\nsave_steps: 2\n"
                      f"device: cpu\n{SYNTH_YAML}")
    result = CliRunner().invoke(app, ["record-oracle", "--config", str(config), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "accuracy 1.0, 6 episodes" in result.output
    return config, run_dir


def test_collator_tokens_and_mask_equal_the_rollouts(small_vlm: Path) -> None:
    """SFT trains exactly what GRPO trains: same ids, same mask, for the same trajectory."""
    from transformers import AutoModelForImageTextToText

    processor = load_processor(small_vlm)
    model = AutoModelForImageTextToText.from_pretrained(small_vlm).eval()
    factory, samples = synth_env()
    scripts = {(s.id, 0): oracle_script(s) for s in samples}
    collector = RolloutCollector(processor, factory, SamplingSettings(max_new_tokens=48),
                                 logits_processor_factory=forcing_factory(processor.tokenizer, scripts))
    episodes = collector.collect(model, [s.id for s in samples[:3]])
    collator = TrajectoryCollator(processor)
    for episode in episodes:
        row = {"messages": episode.messages, "images": episode.images}
        ids, labels, pixel_values, grids = collator.example(row)
        assert ids == episode.prompt_ids + episode.completion_ids
        trained = [label != -100 for label in labels]
        assert trained == [False] * len(episode.prompt_ids) + [bool(m) for m in episode.env_mask]
        assert all(torch.equal(a, b) for a, b in zip(pixel_values, episode.pixel_values))
        assert all(torch.equal(a, b) for a, b in zip(grids, episode.image_grid_thw))
    batch = collator([{"messages": e.messages, "images": e.images} for e in episodes])
    image_id = collator.dialog.image_token_id
    assert (batch["labels"][batch["input_ids"] == image_id] == -100).all()
    assert torch.equal(batch["mm_token_type_ids"].bool(), batch["input_ids"] == image_id)
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(-1).sum())


def test_replay_rebuilds_recorded_episodes(small_vlm: Path, oracle_run: tuple[Path, Path]) -> None:
    _, run_dir = oracle_run
    factory, _ = synth_env()
    records = load_episodes([run_dir])
    assert len(records) == 6
    assert len(load_episodes([run_dir], min_reward=0.95)) == sum(r["reward"] >= 0.95 for r in records)
    dataset = trajectory_dataset(records, factory)
    assert [len(row["images"]) for row in dataset] == [len(r["image_digests"]) for r in records]
    collator = TrajectoryCollator(load_processor(small_vlm))
    for row, record in zip(dataset, records):
        ids, labels, _, _ = collator.example(row)
        trained = collator.dialog.decode([token for token in labels if token != -100])
        assert trained == "".join(record["actions"])
    tampered: dict[str, Any] = json.loads(json.dumps(records[0]))
    tampered["image_digests"][0] = "0" * 64
    with pytest.raises(ValueError, match="replayed images differ"):
        replay(factory(), tampered)
    tampered = json.loads(json.dumps(records[0]))
    tampered["messages"][0]["content"][1]["text"] += " (edited)"
    with pytest.raises(ValueError, match="replayed messages differ"):
        replay(factory(), tampered)
    with pytest.raises(FileNotFoundError, match="episodes.jsonl"):
        load_episodes([run_dir.parent])


def test_sft_cli_trains_checkpoints_and_resumes(small_vlm: Path, oracle_run: tuple[Path, Path]) -> None:
    config, _ = oracle_run
    out = config.parent / "sft-out"
    runner = CliRunner()
    result = runner.invoke(app, ["sft", "--config", str(config)])
    assert result.exit_code == 0, result.output
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(isinstance(r["loss"], float) and isinstance(r["token_accuracy"], float) for r in records)
    assert records[-1]["loss"] < records[0]["loss"]
    before, after = load_file(small_vlm / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any(name.startswith("visual.") for name in changed) and "lm_head.weight" in changed

    config.write_text(config.read_text().replace("max_steps: 3", "max_steps: 4"))
    result = runner.invoke(app, ["sft", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1, 2, 3, 4]
    assert (out / "checkpoint-3").is_dir()  # the final step is checkpointed too, so extending resumes there
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
