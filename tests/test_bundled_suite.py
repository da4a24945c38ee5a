"""The bundled synth-mini suite: default `gym.make`, strict replay, and the `mmsearch-gym eval` main job."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env
from typer.testing import CliRunner

import mmsearch_gym  # noqa: F401
from mmsearch_gym.agents.baselines import OracleAgent
from mmsearch_gym.cache import CacheMiss
from mmsearch_gym.cli import app
from mmsearch_gym.data.bundled import SYNTH_MINI_CACHE
from mmsearch_gym.data.suites import SUITES


def test_synth_mini_is_registered_with_its_cache():
    assert "synth-mini" in SUITES and "synth-mini-train" in SUITES
    assert SYNTH_MINI_CACHE.is_file()


def test_default_make_plays_synth_mini_in_strict_replay():
    env = gym.make("ImageSearchVQA-v0")
    dataset = env.unwrapped.dataset
    assert len(dataset) == 300 and all(s.meta["suite"] == "synth-mini" for s in dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env)
    sample = next(s for s in dataset if s.meta["needs"] == "image+text")
    oracle = OracleAgent(dataset)
    obs, info = env.reset(options={"sample_id": sample.id})
    oracle.reset(info)
    terminated = False
    while not terminated:
        obs, reward, terminated, _, info = env.step(oracle.act(obs))
    assert info["score"] == 1.0 and info["cache_hits"] == 2 and reward == pytest.approx(0.91)
    assert len(obs["images"]) > 1  # thumbnails came back from the recorded image search


def test_unrecorded_query_is_a_cache_miss_naming_the_query():
    env = gym.make("ImageSearchVQA-v0")
    env.reset(seed=0)
    with pytest.raises(CacheMiss, match="never recorded query"):
        env.step("<reason>x</reason><text_search>never recorded query</text_search>")


def test_replay_or_empty_counts_misses():
    env = gym.make("ImageSearchVQA-v0", search="replay_or_empty")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step("<reason>x</reason><text_search>never recorded query</text_search>")
    assert not terminated and info["cache_misses"] == 1 and info["cache_hits"] == 0


def test_eval_main_job(tmp_path):
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["eval", "--limit", "60", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "accuracy %" in result.output and (out / "summary.png").stat().st_size > 1000
    metrics = {name: json.loads((out / name / "metrics.json").read_text()) for name in ("no-search", "rag", "oracle")}
    assert metrics["oracle"]["accuracy"] == 1.0
    assert metrics["no-search"]["search_ratio"] == 0.0
    for needs in ("image", "image+text"):
        assert metrics["no-search"]["by_needs"][needs]["accuracy"] == 0.0
    manifest = json.loads((out / "oracle" / "manifest.json").read_text())
    assert manifest["cache_bundle_hash"] and manifest["suite"] == "synth-mini"
    first = (out / "oracle" / "metrics.json").read_bytes()
    again = runner.invoke(app, ["eval", "--limit", "60", "--agents", "oracle", "--out", str(tmp_path / "again")])
    assert again.exit_code == 0 and (tmp_path / "again" / "oracle" / "metrics.json").read_bytes() == first


@pytest.mark.parametrize("args, message", [
    (["--suite", "nope"], "nope"),
    (["--agents", "gpt"], "gpt"),
    (["--search", "bogus"], "bogus"),
    (["--env", "max_turns"], "KEY=VALUE"),
])
def test_eval_errors_name_the_bad_value(tmp_path, args, message):
    result = CliRunner().invoke(app, ["eval", "--out", str(tmp_path), "--limit", "2", *args])
    assert result.exit_code == 2 and message in result.output


def test_make_by_string_in_a_fresh_interpreter():
    import subprocess
    import sys

    script = ("import gymnasium as gym, sys; env = gym.make('mmsearch_gym:ImageSearchVQA-v0'); "
              "obs, info = env.reset(seed=0); assert 'mmsearch_gym' in sys.modules; "
              "print(len(env.unwrapped.dataset), info['sample_id'])")
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert first == second and first.startswith("300 synth-test-")
