"""Golden files pin the rendered dialogs (prompts, results turns, tool errors).

To update after an intended wording change: `UPDATE_GOLDEN=1 python -m pytest tests/test_prompts_golden.py`,
then review the diff of tests/golden/ like any other change.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gymnasium as gym
import pytest

import mmsearch_gym  # noqa: F401
from mmsearch_gym.envs import PromptSet
from test_env import ANSWER, IMAGE, TEXT, ExplodingBackend

GOLDEN = Path(__file__).parent / "golden"


def dialog(env, actions, sample_id="rbs-year"):
    obs, _ = env.reset(options={"sample_id": sample_id})
    for action in actions:
        obs, *_ = env.step(action)
    return {"messages": list(obs["messages"]), "image_shapes": [list(image.shape) for image in obs["images"]]}


def check_golden(name: str, value: dict) -> None:
    path = GOLDEN / f"{name}.json"
    rendered = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
    assert rendered == path.read_text(encoding="utf-8"), f"{path.name} differs from the rendered dialog"


@pytest.mark.parametrize("name, actions", [
    ("image_text_answer", [IMAGE, TEXT, ANSWER]),
    ("text_answer", [TEXT, ANSWER]),
    ("first_turn", []),
])
def test_search_dialogs(tiny_world, name, actions):
    samples, backend = tiny_world
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=backend)
    check_golden(name, dialog(env, actions))


def test_direct_answer_prompt(tiny_world):
    samples, backend = tiny_world
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=backend, prompt_style="direct_answer")
    check_golden("direct_answer", dialog(env, []))


def test_tool_error_dialog(tiny_world):
    samples, _ = tiny_world
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=ExplodingBackend())
    check_golden("tool_errors", dialog(env, [IMAGE, TEXT, ANSWER]))


def test_user_prompts_from_file(tiny_world, tmp_path):
    samples, backend = tiny_world
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps({"round_one": "Q: {question}\nUse <search><img></search> if needed.",
                                "after_image_search": "Now answer."}))
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=backend, prompts=str(path))
    result = dialog(env, [IMAGE])
    assert result["messages"][0]["content"][1]["text"].startswith("Q: In which year")
    assert result["messages"][2]["content"][-1]["text"].endswith("Now answer.")


@pytest.mark.parametrize("content, message", [
    ('{"round_one": "no placeholder"}', "question"),
    ('{"unknown_key": "x"}', "unknown_key"),
    ("not json", "cannot read"),
])
def test_bad_prompt_files_are_named(tmp_path, content, message):
    path = tmp_path / "prompts.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        PromptSet.from_file(path)
