"""Multi-turn GRPO through TRL: MultiTurnGRPOTrainer + EnvRolloutFunc, the TRL tool route, configs, CLI.

The 3-step run is instrumented: the rewards TRL computes must be the env rewards of the rollout (with
the search-penalty warm-up following the trainer step), advantages must be (r - mean) / (std + 1e-4)
per group, every training forward must have passed the image-placeholder check, sampling log-probs
must match TRL's own forward (< 1e-5), the weights (vision tower included) must move, every metric
must be logged, and a second invocation must resume from the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from safetensors.torch import load_file  # noqa: E402
from tiny_vlm_small_vocab import (  # noqa: E402
    answer,
    build_small_vocab_vlm,
    forcing_factory,
    oracle_script,
    synth_env,
)
from typer.testing import CliRunner  # noqa: E402

from mmsearch_gym.commands.train import app  # noqa: E402
from mmsearch_gym.hf import load_processor  # noqa: E402
from mmsearch_gym.trainers.config import ConfigError, GRPORunConfig, from_dict, load_config  # noqa: E402
from mmsearch_gym.trainers.env_tools import (  # noqa: E402
    ENDED,
    EnvironmentFactory,
    tool_chat_template,
    tool_dataset,
    training_step_callback,
)
from mmsearch_gym.trainers.grpo import (  # noqa: E402
    GRPO_METRIC_ALIASES,
    env_reward,
    prompt_dataset,
    sample_id_of,
    train_grpo,
    verify_trl_internals,
)
from mmsearch_gym.trainers.metrics_log import read_metrics  # noqa: E402

SYNTH = {"n_entities": 3, "n_questions": 6}
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="session")
def small_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_vocab_vlm(tmp_path_factory.getbasetemp())


def _config(model: Path, out: Path, **overrides: Any) -> GRPORunConfig:
    data = dict(model=str(model), output_dir=str(out), max_steps=3, num_generations=2, per_device_train_batch_size=4,
                learning_rate=5e-3, beta=0.04, save_steps=1, check_logprobs=True, logprob_tolerance=1e-5,
                device="cpu", env=dict(synth=SYNTH, top_k=2, reward=dict(penalty_warmup_steps=2)),
                generation=dict(max_new_tokens=48), trl={"shuffle_dataset": False})
    data.update(overrides)
    return from_dict(GRPORunConfig, data)


class _Probe:
    """Instruments a trainer: rollout outputs, TRL's rewards, advantages, trainer steps."""

    def __init__(self) -> None:
        self.rollouts: list[dict[str, Any]] = []
        self.rewards: list[torch.Tensor] = []
        self.advantages: list[torch.Tensor] = []
        self.trainers: list[Any] = []

    def __call__(self, trainer: Any) -> None:
        self.trainers.append(trainer)
        rollout, calculate = trainer.rollout_func, trainer._calculate_rewards
        score = trainer._generate_and_score_completions

        def rollout_func(prompts: list, tr: Any) -> dict[str, Any]:
            weights = {name: value.detach().clone() for name, value in tr.model.state_dict().items()}
            output = rollout(prompts, tr)
            self.rollouts.append({"step": tr.state.global_step, "weights": weights, **output})
            return output

        def calculate_rewards(*args: Any, **kwargs: Any) -> torch.Tensor:
            rewards = calculate(*args, **kwargs)
            self.rewards.append(rewards.clone())
            return rewards

        def generate_and_score(inputs: list) -> dict[str, Any]:
            output = score(inputs)
            self.advantages.append(output["advantages"].clone())
            return output

        trainer.rollout_func = rollout_func
        trainer._calculate_rewards = calculate_rewards
        trainer._generate_and_score_completions = generate_and_score


def test_trl_internals_check_passes_and_catches_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from trl import GRPOTrainer

    verify_trl_internals()

    def _generate(self: Any, prompts: list) -> tuple:  # one value short, as if TRL dropped tool_images
        prompt_ids = completion_ids = tool_mask = completions = logprobs = extra_fields = images = None
        return prompt_ids, completion_ids, tool_mask, completions, logprobs, extra_fields, images

    monkeypatch.setattr(GRPOTrainer, "_generate", _generate)
    with pytest.raises(RuntimeError, match="TRL internals .* changed.*_generate returns"):
        verify_trl_internals()

    def renamed(self: Any, batch: list) -> tuple:
        raise NotImplementedError

    monkeypatch.setattr(GRPOTrainer, "_generate", renamed)
    with pytest.raises(RuntimeError, match=r"is not \(self, prompts\)"):
        verify_trl_internals()


def test_image_placeholder_check_rejects_mismatches() -> None:
    """The check run before every training forward: placeholders per sample == that sample's features."""
    from types import SimpleNamespace

    from mmsearch_gym.trainers.grpo import MultiTurnGRPOTrainer

    check = MultiTurnGRPOTrainer._check_image_tokens
    fake = SimpleNamespace(_image_token_id=7, _merge=4, image_checks=0)
    ids = torch.tensor([[1, 7, 7, 7, 7, 2], [0, 1, 2, 3, 4, 5]])
    mask = torch.ones_like(ids)
    good = {"image_grid_thw": torch.tensor([[1, 4, 4]]), "num_images": [1, 0], "pixel_values": torch.zeros(16, 3),
            "mm_token_type_ids": (ids == 7).int()}
    check(fake, ids, mask, good)
    assert fake.image_checks == 1
    fewer = ids.clone()
    fewer[0, 1] = 3
    with pytest.raises(RuntimeError, match="sample 0: 3 image placeholder tokens but 1 image"):
        check(fake, fewer, mask, {**good, "mm_token_type_ids": (fewer == 7).int()})
    with pytest.raises(RuntimeError, match="no images were passed"):
        check(fake, ids, mask, {**good, "pixel_values": None})
    with pytest.raises(RuntimeError, match="mm_token_type_ids"):
        check(fake, ids, mask, {**good, "mm_token_type_ids": torch.zeros_like(ids)})
    with pytest.raises(RuntimeError, match="pixel_values has 15 rows"):
        check(fake, ids, mask, {**good, "pixel_values": torch.zeros(15, 3)})


def test_env_reward_passes_env_rewards_and_logs_metrics() -> None:
    logged: dict[str, float] = {}
    rewards = env_reward(prompts=[0, 1, 2, 3], completions=[0, 1, 2, 3], env_reward=[0.91, 0.1, 1.0, 0.0],
                         env_score=[1.0, 0.0, 1.0, 0.0], env_format=[1, 1, 1, 0], env_searches=[1, 1, 0, 2],
                         env_turns=[2, 2, 1, 3], log_metric=logged.__setitem__)
    assert rewards == [0.91, 0.1, 1.0, 0.0]
    assert logged == {"env/accuracy": 0.5, "env/search_ratio": 0.75, "env/searches_per_episode": 1.0,
                      "env/format_rate": 0.75, "env/turns": 2.0}
    with pytest.raises(ValueError, match="env_reward"):
        env_reward(prompts=[0], completions=[0])
    _, samples = synth_env()
    dataset = prompt_dataset(samples)
    assert [sample_id_of(row["prompt"]) for row in dataset] == [s.id for s in samples]
    with pytest.raises(ValueError, match="sample_id"):
        sample_id_of([{"role": "user", "content": "q"}])


def test_grpo_three_steps_on_cpu_with_resume(small_vlm: Path, tmp_path: Path) -> None:
    _, samples = synth_env(**SYNTH, top_k=2)
    processor = load_processor(small_vlm)
    scripts = {}
    for sample in samples:  # group member 0 follows the oracle, member 1 answers wrongly at once
        scripts[(sample.id, 0)] = oracle_script(sample)
        scripts[(sample.id, 1)] = [answer("certainly wrong")]
    forcing = forcing_factory(processor.tokenizer, scripts)
    out = tmp_path / "grpo"
    probe = _Probe()
    train_grpo(_config(small_vlm, out, max_steps=2), logits_processor_factory=forcing, on_trainer=probe)
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    train_grpo(_config(small_vlm, out, max_steps=3), logits_processor_factory=forcing, on_trainer=probe)
    assert len(probe.trainers) == 2 and probe.trainers[1].state.global_step == 3

    # the resumed run continued from checkpoint-2's weights (transformers alone would not load them)
    from transformers import AutoModelForImageTextToText

    assert [r["step"] for r in probe.rollouts] == [0, 1, 2]
    saved = AutoModelForImageTextToText.from_pretrained(out / "checkpoint-2").state_dict()
    resumed = probe.rollouts[2]["weights"]
    assert set(saved) == set(resumed) and all(torch.equal(saved[name], resumed[name]) for name in saved)
    assert not all(torch.equal(saved[name], probe.rollouts[0]["weights"][name]) for name in saved)

    # the rewards TRL optimises are the env rewards; the penalty warm-up (-p at step 0 to +p at step 2,
    # as MMSearch-R1's trainer) follows the trainer step
    for rollout, rewards in zip(probe.rollouts, probe.rewards):
        assert rewards[:, 0].tolist() == pytest.approx(rollout["env_reward"])
        penalty = 0.1 * (2 * min(1.0, rollout["step"] / 2) - 1)
        for value, searches, score in zip(rollout["env_reward"], rollout["env_searches"], rollout["env_score"]):
            expected = 0.9 * score * ((1 - penalty) if searches else 1.0) + 0.1
            assert value == pytest.approx(expected)
    # group advantages: (r - mean) / (std + 1e-4) within each group of G=2 consecutive episodes
    for rewards, advantages in zip(probe.rewards, probe.advantages):
        grouped = rewards[:, 0].view(-1, 2)
        expected = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + 1e-4)
        assert torch.allclose(advantages, expected.view(-1), atol=1e-4)
    # thumbnails were inside completions and every training forward passed the placeholder check
    assert any(len(images) == 3 for rollout in probe.rollouts for images in rollout["images"])
    for trainer, steps in zip(probe.trainers, (2, 1)):  # logp check + reference + loss forward per step
        assert trainer.image_checks >= 3 * steps
        assert trainer.last_logp_diff is not None and trainer.last_logp_diff < 1e-5

    # every metric, every step, once (the resumed run dropped nothing and duplicated nothing)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3]
    for record in records:
        for name in GRPO_METRIC_ALIASES:
            assert isinstance(record[name], float), (name, record)
        assert record["raw"]["sampling/logp_diff_max"] < 1e-5
    assert records[-1]["kl"] > 0

    # the weights moved, the vision tower's included
    before, after = load_file(small_vlm / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert any("visual" in name for name in changed)
    assert any("lm_head" in name for name in changed)
    assert any(name.startswith("model.layers.") for name in changed)
    run = json.loads((out / "train_config.json").read_text())
    assert run["kind"] == "grpo" and run["config"]["num_generations"] == 2


def test_trl_environment_factory_route(small_vlm: Path, tmp_path: Path) -> None:
    """The env as TRL tools: unit behaviour, then one GRPOTrainer step with forced tool calls."""
    from transformers import LogitsProcessor, LogitsProcessorList
    from trl import GRPOConfig, GRPOTrainer

    make_env, samples = synth_env()
    sample = next(s for s in samples if s.meta["needs"] == "image")
    factory = EnvironmentFactory(make_env)
    tools = factory()
    with pytest.raises(ValueError, match="sample_id"):
        tools.reset(prompt="q")
    tools.reset(sample_id=sample.id, prompt="ignored")
    blocks = tools.image_search()
    assert [b["type"] for b in blocks] == ["text", "image", "text", "image", "text"]
    assert "Synthpedia" in blocks[2]["text"] and "<answer>" not in blocks[-1]["text"]
    assert tools.answer(sample.answers[0]).startswith("Answer recorded")
    assert tools.get_reward() == pytest.approx(0.91)
    assert tools.text_search("more") == [{"type": "text", "text": ENDED}]
    tools.reset(sample_id=sample.id)
    assert tools.get_reward() == 0.0  # never answered

    processor = load_processor(small_vlm)
    processor.chat_template = tool_chat_template()
    tokenizer = processor.tokenizer
    args = GRPOConfig(output_dir=str(tmp_path / "tools"), max_steps=1, per_device_train_batch_size=2, num_generations=2,
                      use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
                      max_completion_length=400, save_strategy="no", shuffle_dataset=False, logging_steps=1)
    dataset = tool_dataset([sample])
    trainer = GRPOTrainer(model=str(small_vlm), args=args, train_dataset=dataset, processing_class=processor,
                          environment_factory=factory, callbacks=[training_step_callback(factory)])
    assert sorted(tool.__name__ for tool in trainer.tools) == ["answer", "image_search", "text_search"]
    calls = ['<tool_call>\n{"name": "image_search", "arguments": {}}\n</tool_call>',
             '<tool_call>\n{"name": "answer", "arguments": {"answer": "%s"}}\n</tool_call>' % sample.answers[0]]
    encoded = [tokenizer(call, add_special_tokens=False)["input_ids"] for call in calls]
    im_start, im_end = tokenizer.convert_tokens_to_ids("<|im_start|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")

    class ForceCalls(LogitsProcessor):  # turn n = (number of <|im_start|> - 3) / 2 in the row's input
        def __init__(self, input_ids: torch.Tensor) -> None:
            self.length = input_ids.shape[1]
            self.turns = [(int(count) - 3) // 2 for count in (input_ids == im_start).sum(1)]

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            step = input_ids.shape[1] - self.length
            for row, turn in enumerate(self.turns):
                ids = encoded[min(turn, 1)]
                scores[row] = float("-inf")
                scores[row, ids[step] if step < len(ids) else im_end] = 0.0
            return scores

    generate = trainer.model.generate

    def forced_generate(*a: Any, **kwargs: Any) -> Any:
        return generate(*a, logits_processor=LogitsProcessorList([ForceCalls(kwargs["input_ids"])]), **kwargs)

    trainer.model.generate = forced_generate
    trainer.train()
    logs = trainer.state.log_history[0]
    assert logs["tools/call_frequency"] == 2.0 and logs["tools/failure_frequency"] == 0.0
    assert logs["reward"] == pytest.approx(0.91)
    assert [env.get_reward() for env in trainer._environment_pool[None]] == pytest.approx([0.91, 0.91])
    assert factory.training_step == 0  # the callback handed the trainer's step to the envs


def test_config_loading_errors_name_the_problem(tmp_path: Path) -> None:
    config = load_config(EXAMPLES / "grpo-synth-mini.yaml", GRPORunConfig)
    assert config.num_generations == 4 and config.env.reward.penalty_warmup_steps == 10
    assert config.learning_rate == 1e-5 and config.env.synth is not None

    def bad(text: str) -> str:
        path = tmp_path / "bad.yaml"
        path.write_text("model: m\noutput_dir: o\n" + text)
        with pytest.raises(ConfigError) as info:
            load_config(path, GRPORunConfig)
        return str(info.value)

    assert "env.serch" in bad("env:\n  serch: replay\n") and "known keys" in bad("num_generation: 8\n")
    assert "env.synth.n_entity" in bad("env:\n  synth:\n    n_entity: 3\n")
    assert "num_generations: expected an integer, got 'four'" in bad("num_generations: four\n")
    assert "generation.temperature" in bad("generation:\n  temperature: 0\n")
    assert "resume" in bad("resume: maybe\n")
    assert "dataset" in bad("env:\n  dataset: synth-mini\n  synth: {}\n")
    assert "static" in bad("env:\n  search: static\n")
    assert bad("learning_rate: 1e-5\nbeta: -1\n").startswith(str(tmp_path / "bad.yaml")) is True
    # the generation and reward sections are the hf / env dataclasses themselves: their own checks apply
    assert "generation: top_p must be a number in (0.0, 1.0], got 0.0" in bad("generation:\n  top_p: 0\n")
    assert "generation: max_new_tokens must be an int >= 1, got 0" in bad("generation:\n  max_new_tokens: 0\n")
    assert "env.reward: unknown scorer 'fuzzy'" in bad("env:\n  reward: {scorer: fuzzy}\n")
    assert "env.reward: format_weight must be a number in [0.0, 1.0]" in bad("env:\n  reward: {format_weight: 2}\n")
    assert "max_steps must be an int >= 1, got 0" in bad("max_steps: 0\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml", GRPORunConfig)


def test_cli_grpo(small_vlm: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    config = tmp_path / "run.yaml"
    out = tmp_path / "cli-out"
    config.write_text(f"model: {small_vlm}\noutput_dir: {out}\nmax_steps: 1\nnum_generations: 2\n"
                      "per_device_train_batch_size: 2\ndevice: cpu\nenv:\n  synth: {n_entities: 2, n_questions: 2}\n"
                      "  top_k: 1\ngeneration: {max_new_tokens: 8}\n")
    result = runner.invoke(app, ["grpo", "--config", str(config), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["config"]["num_generations"] == 2
    result = runner.invoke(app, ["grpo", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [1]
    assert (out / "checkpoint-1").is_dir() and (out / "model.safetensors").is_file()
    config.write_text(config.read_text() + "resume: false\n")
    result = runner.invoke(app, ["grpo", "--config", str(config)])
    assert result.exit_code == 1 and "already holds checkpoint-1" in result.output
    config.write_text("model: m\noutput_dir: o\nbogus: 1\n")
    result = runner.invoke(app, ["grpo", "--config", str(config)])
    assert result.exit_code == 1 and "unknown key(s) ['bogus']" in result.output
