"""The learning-to-search demo (`mmsearch-gym train demo`) at toy scale: every stage runs and the
results file has its structure. The learning outcome is measured by the demo itself
(docs/learning-to-search.md), never asserted here."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")
pytest.importorskip("bm25s")
pytest.importorskip("matplotlib")

from typer.testing import CliRunner

from mmsearch_gym.benchmarks.demo import STAGES, TOY, DemoConfig, config_with
from mmsearch_gym.benchmarks.demo_data import OverSearchAgent, SuiteScale
from mmsearch_gym.trainers.demo_plot import moving_average, plot_learning_curves


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    from mmsearch_gym.commands.train import app

    out = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--toy", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_stage_runs_and_results_have_their_structure(toy_run):
    out, output = toy_run
    results = json.loads((out / "results.json").read_text())
    assert results["seed"] == 3
    assert results["package_version"]
    assert results["wall_seconds"] > 0
    for stage in STAGES:
        entry = results[stage]
        for key in ("accuracy", "search_ratio", "format_rate", "mean_reward"):
            assert 0.0 <= entry[key] <= 1.0, (stage, key)
        assert set(entry["search_ratio_by_category"]) == {"search_free", "search_required"}
        records = (out / "eval" / stage / "episodes.jsonl").read_text().splitlines()
        assert len(records) == entry["episodes"] == 6  # every test question was played
        assert entry["run_dir"] == str(out / "eval" / stage)
        assert f"{stage} " in output or f"{stage}:" in output
    # each stage trained or evaluated its own model: SFT and GRPO wrote weights of their own
    assert (out / "sft" / "model.safetensors").is_file() and (out / "grpo" / "model.safetensors").is_file()
    curves = [json.loads(line) for line in (out / "grpo" / "curves.jsonl").read_text().splitlines()]
    assert [row["step"] for row in curves] == [0, 1]
    assert all(row["episodes"] == 4 for row in curves)  # 2 prompts x 2 generations per step
    assert (out / "learning_curves.png").stat().st_size > 1000
    demos = [json.loads(line) for line in (out / "demonstrations" / "episodes.jsonl").read_text().splitlines()]
    assert all(record["actions"][0].endswith("<search><img></search>") for record in demos)


def test_a_second_run_reuses_finished_stages(toy_run):
    from mmsearch_gym.commands.train import app

    out, _ = toy_run
    weights = (out / "grpo" / "model.safetensors").stat().st_mtime_ns
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--toy", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert (out / "grpo" / "model.safetensors").stat().st_mtime_ns == weights


def test_over_search_demonstrator_always_searches_first():
    from mmsearch_gym.data.synth import generate_questions, generate_world

    world = generate_world(0, 6, n_test_entities=0)
    samples = generate_questions(world, 20, 1, "train")
    for sample in samples:
        plan = OverSearchAgent.plan(sample)
        assert plan[0] == "image_search" and plan[-1] == "answer"
        if sample.category == "search_free":
            assert plan == ["image_search", "answer"]  # the oracle would answer at once


def test_overrides_are_checked():
    config = config_with(DemoConfig(), ["grpo_steps=5", "temperature=1.2"])
    assert config.grpo_steps == 5 and config.temperature == 1.2
    with pytest.raises(ValueError, match="grpo_stepz"):
        config_with(DemoConfig(), ["grpo_stepz=5"])
    with pytest.raises(ValueError, match="num_generations"):
        config_with(DemoConfig(), ["num_generations=1"])
    with pytest.raises(ValueError, match="grpo_steps"):
        config_with(DemoConfig(), ["grpo_steps=true"])
    assert DemoConfig(**TOY).suite != SuiteScale() and SuiteScale().is_synth_mini


def test_suite_sizes_are_set_with_dotted_keys():
    config = config_with(DemoConfig(), ["suite.n_train=6000", "suite.n_entities_train=2400", "suite.pool_entities=480",
                                        "sft_epochs=1.5"])
    assert config.suite == SuiteScale(n_train=6000, n_entities_train=2400, pool_entities=480)
    assert config.sft_epochs == 1.5 and config.suite.is_synth_mini  # the test split is still synth-mini's
    assert not config_with(DemoConfig(), ["suite.n_entities_train=2400"]).suite.is_synth_mini  # pools would grow
    with pytest.raises(ValueError, match="suite.n_trian"):
        config_with(DemoConfig(), ["suite.n_trian=5"])


def test_pinned_pools_keep_the_test_split_when_the_train_split_grows(tmp_path):
    """Regression: the fact-value pools were sized by the total entity count, so more train entities
    changed the test entities' facts (and the test split's hash)."""
    from mmsearch_gym.data.synth.build import build_suite

    small = build_suite(tmp_path / "small", seed=4, n_test=10, n_train=10, n_entities_test=5, n_entities_train=15,
                        corpus=False)
    grown = build_suite(tmp_path / "grown", seed=4, n_test=10, n_train=40, n_entities_test=5, n_entities_train=60,
                        pool_entities=20, corpus=False)
    assert grown.test_hash == small.test_hash and grown.train_hash != small.train_hash


def test_cli_reports_a_bad_override_in_one_line(tmp_path):
    from mmsearch_gym.commands.train import app

    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path), "--set", "nope=1"])
    assert result.exit_code == 1
    assert "nope=1" in result.output and "Traceback" not in result.output


def test_moving_average_and_empty_plot(tmp_path):
    assert moving_average([1.0, None, 3.0, 5.0], 2) == [1.0, 1.0, 2.0, 4.0]
    assert moving_average([None], 3) == [None]
    png = plot_learning_curves(tmp_path / "missing.jsonl", tmp_path / "plot.png")
    assert png.stat().st_size > 1000


def test_first_action_exploration_draws_the_turn_one_action_only_at_the_decision_token():
    import torch

    from mmsearch_gym.trainers.demo_probe import FirstActionExploration
    from mmsearch_gym.trainers.sampling import TurnContext
    from mmsearch_gym.trainers.tiny_model import train_tokenizer

    tokenizer = train_tokenizer(320)
    explore = FirstActionExploration(tokenizer, epsilon=1.0, seed=0)
    assert explore([TurnContext(0, 0, "s", 0, 1, 3)]) == []  # turn two: never explored
    assert FirstActionExploration(tokenizer, 0.0)([TurnContext(0, 0, "s", 0, 0, 3)]) == []
    (processor,) = explore([TurnContext(0, 0, "s", 0, 0, 3), TurnContext(1, 1, "t", 0, 0, 3)])
    prompt = [5, 6, 7]
    at_decision = torch.tensor([prompt + explore.prefix, prompt + explore.prefix[:-1] + [9]])
    scores = torch.zeros(2, len(tokenizer))
    out = processor(at_decision, scores)
    assert torch.equal(scores, torch.zeros(2, len(tokenizer)))  # out of place
    assert int(torch.isfinite(out[0]).sum()) == 1 and int(out[0].argmax()) in explore.choices
    assert torch.equal(out[1], scores[1])  # the second row is not at its decision token
    assert explore.explored == 1
