"""The scripted baselines read structured data, never our prompt wording (issue: typed contracts).

The RAG workflow takes the question and the search results from the env's `info`; the no-search
baseline names colours through `mmsearch_gym.imaging`. Both must play the same with any `PromptSet`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mmsearch_gym  # noqa: F401 - registers the env
from mmsearch_gym.agents.baselines import NoSearchAgent, RAGWorkflowAgent
from mmsearch_gym.envs import PromptSet
from mmsearch_gym.imaging import NAMED_COLOURS, dominant_colour_name

# Wording unlike ours everywhere the old parser looked ("Original user's question:", "title: ").
REWORDED = PromptSet(
    round_one="Q: {question}\nUse <search><img></search>, <text_search>q</text_search> or <answer>a</answer>.",
    results_turn="<information>{results}</information>\nAsked: {question}\n{follow_up}",
    image_results_header="Matches:\n",
    text_results_header="Pages about {query}:\n",
    after_image_search="Go on.",
    after_text_search="Answer now.",
)


def play_suite(agent, prompts=None, limit=30):
    env = gym.make("ImageSearchVQA-v0", prompts=prompts)
    scores, transcripts = [], []
    for index in range(min(limit, len(env.unwrapped.dataset))):
        obs, info = env.reset(seed=0, options={"index": index})
        agent.reset(info)
        terminated = False
        while not terminated:
            action = agent.act_batch([obs], [info])[0]
            obs, _, terminated, _, info = env.step(action)
        scores.append(info["score"])
        transcripts.append(obs["messages"][-1]["content"][0]["text"])
    env.close()
    return scores, transcripts


def test_rag_agent_gives_the_same_answers_with_custom_prompts():
    agent = RAGWorkflowAgent()
    default_scores, default_answers = play_suite(agent)
    custom_scores, custom_answers = play_suite(agent, REWORDED)
    assert sum(default_scores) > 0  # the suite gives the baseline something to find
    assert custom_scores == default_scores and custom_answers == default_answers


def test_rag_agent_without_step_info_says_what_it_needs():
    agent = RAGWorkflowAgent()
    env = gym.make("ImageSearchVQA-v0")
    obs, info = env.reset(seed=0, options={"index": 0})
    agent.reset({"sample_id": info["sample_id"]})
    obs, *_ = env.step(agent.act(obs))
    with pytest.raises(ValueError, match="latest step info"):
        agent.act(obs)
    env.close()


def test_no_search_agent_is_prompt_independent():
    agent = NoSearchAgent()
    assert play_suite(agent, limit=20)[0] == play_suite(agent, REWORDED, limit=20)[0]


def test_colours_come_from_the_ground_layer():
    pixels = np.full((6, 6, 3), NAMED_COLOURS["teal"], np.uint8)
    assert dominant_colour_name(pixels) == "teal"
    source = Path(__file__).resolve().parents[1] / "mmsearch_gym" / "agents" / "baselines.py"
    imported = {node.module for node in ast.walk(ast.parse(source.read_text())) if isinstance(node, ast.ImportFrom)}
    assert not any(module.startswith("mmsearch_gym.data.synth") for module in imported if module)
