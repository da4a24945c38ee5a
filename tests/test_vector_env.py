"""Batched rollouts: `gym.make_vec` works in sync and async mode with default arguments, and plays
whole episodes, Gymnasium's autoreset included."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import mmsearch_gym  # noqa: F401 - registers the env

IMAGE = "<reason>Unknown emblem.</reason><search><img></search>"
ANSWER = "<reason>Guess.</reason><answer>unknown</answer>"
NUM_ENVS = 3


def _check_batch(env, obs):
    single = env.single_observation_space
    assert set(obs) == {"images", "messages"}
    assert len(obs["images"]) == len(obs["messages"]) == NUM_ENVS
    for i in range(NUM_ENVS):
        assert {"images": obs["images"][i], "messages": obs["messages"][i]} in single


def play(mode, **kwargs):
    """Two whole episodes per env (image search, answer), then the autoreset step; returns what was seen."""
    env = gym.make_vec("ImageSearchVQA-v0", num_envs=NUM_ENVS, vectorization_mode=mode, **kwargs)
    try:
        assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        seen = []
        obs, info = env.reset(seed=7)
        _check_batch(env, obs)
        seen.append(("reset", list(info["sample_id"]), [len(m) for m in obs["messages"]]))
        for episode in range(2):
            obs, reward, terminated, truncated, info = env.step([IMAGE] * NUM_ENVS)
            _check_batch(env, obs)
            assert not terminated.any() and (info["image_searches"] == 1).all()
            assert all(len(images) >= 1 for images in obs["images"])
            obs, reward, terminated, truncated, info = env.step([ANSWER] * NUM_ENVS)
            _check_batch(env, obs)
            assert terminated.all() and not truncated.any()
            assert [len(m) for m in obs["messages"]] == [4] * NUM_ENVS
            seen.append(("end", reward.round(6).tolist(), list(info["sample_id"]), list(info["format_score"])))
            # NEXT_STEP autoreset: this step's actions are ignored and fresh episodes start
            obs, reward, terminated, truncated, info = env.step([ANSWER] * NUM_ENVS)
            _check_batch(env, obs)
            assert not terminated.any() and (reward == 0).all() and (info["turn"] == 0).all()
            assert [len(m) for m in obs["messages"]] == [1] * NUM_ENVS
            seen.append(("autoreset", list(info["sample_id"]),
                         [m[0]["content"][1]["text"][-60:] for m in obs["messages"]]))
        return seen
    finally:
        env.close()


def test_sync_and_async_make_vec_play_the_same_episodes():
    sync = play("sync")
    assert play("async") == sync
    assert sync[1][0] == "end" and sync[1][3] == [1] * NUM_ENVS


def test_async_without_shared_memory_still_works():
    assert play("async", vector_kwargs={"shared_memory": False}) == play("sync")


def test_async_views_without_copy_show_the_latest_batch():
    env = gym.make_vec("ImageSearchVQA-v0", num_envs=2, vectorization_mode="async", vector_kwargs={"copy": False})
    try:
        obs, _ = env.reset(seed=0)
        assert [len(m) for m in obs["messages"]] == [1, 1]
        obs, *_ = env.step([IMAGE, ANSWER])
        assert [len(m) for m in obs["messages"]] == [3, 2]
        assert isinstance(obs["images"][0][0], np.ndarray) and len(obs["images"][:1]) == 1
    finally:
        env.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_vector_env_passes_env_kwargs(mode):
    env = gym.make_vec("ImageSearchVQA-v0", num_envs=2, vectorization_mode=mode, rules="lenient", max_turns=1)
    try:
        env.reset(seed=0)
        _, _, terminated, _, info = env.step([IMAGE + "  ", IMAGE])
        assert terminated.all() and list(info["rules"]) == ["lenient", "lenient"]
    finally:
        env.close()
