"""ImageSearchVQA-v0: Gymnasium semantics, multi-turn rules, determinism and errors."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mmsearch_gym  # noqa: F401 - registers the env
from mmsearch_gym.envs import ImageSearchVQAEnv
from mmsearch_gym.search import EncodedImage, SearchItem, SearchResults

IMAGE = "<reason>Unknown emblem.</reason><search><img></search>"
TEXT = "<reason>It is the Red Banner Society.</reason><text_search>Red Banner Society founded</text_search>"
ANSWER = "<reason>The page says 1887.</reason><answer>1887</answer>"


def make(tiny_world, **kwargs):
    samples, backend = tiny_world
    kwargs.setdefault("dataset", samples)
    kwargs.setdefault("search", backend)
    return gym.make("ImageSearchVQA-v0", **kwargs)


def play(env, actions, index=0):
    obs, info = env.reset(seed=0, options={"index": index})
    steps = []
    for action in actions:
        steps.append(env.step(action))
        if steps[-1][2]:
            break
    return obs, info, steps


def test_check_env_passes_on_wrapped_and_unwrapped(tiny_world):
    env = make(tiny_world)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env)
    check_env(env.unwrapped)


def test_random_sampled_actions_never_raise(tiny_world):
    env = make(tiny_world)
    env.action_space.seed(7)
    for episode in range(30):
        env.reset(seed=episode)
        terminated = False
        while not terminated:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert obs in env.observation_space
            assert not truncated
            assert -1.0 <= reward <= 1.0


def test_full_three_turn_episode(tiny_world):
    env = make(tiny_world)
    obs, info, steps = play(env, [IMAGE, TEXT, ANSWER])
    assert [s[1] for s in steps] == [0.0, 0.0, pytest.approx(0.91)]
    assert [s[2] for s in steps] == [False, False, True]
    final_obs, _, _, _, final_info = steps[-1]
    assert final_info["score"] == 1.0 and final_info["format_score"] == 1
    assert final_info["image_searches"] == 1 and final_info["text_searches"] == 1
    roles = [m["role"] for m in final_obs["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    # two thumbnails appended after the question image, referenced by image parts of the results turn
    assert len(final_obs["images"]) == 3
    results_turn = final_obs["messages"][2]["content"]
    assert [p["index"] for p in results_turn if p["type"] == "image"] == [1, 2]
    text = "".join(p["text"] for p in results_turn if p["type"] == "text")
    assert text.startswith("Searched results: <information>[Image Search Results]")
    assert "</information>\nOriginal user's question: In which year" in text
    text_turn = final_obs["messages"][4]["content"][0]["text"]
    assert "1. (https://example.org/h) The Red Banner Society was founded in 1887." in text_turn




def test_direct_answer_and_trailing_text(tiny_world):
    env = make(tiny_world)
    *_, steps = play(env, ["<reason>Guess.</reason><answer>1887</answer>"])
    assert steps[-1][1] == pytest.approx(1.0)
    *_, steps = play(env, ["<reason>Guess.</reason><answer>1887</answer> Hope this helps!"])
    assert steps[-1][1] == pytest.approx(0.9)
    assert steps[-1][4]["action_kind"] == "invalid" and steps[-1][4]["score"] == 1.0
    *_, steps = play(env, ["It is 1887."])
    assert steps[-1][1] == 0.0 and steps[-1][2]


def test_wrong_answer_after_search(tiny_world):
    env = make(tiny_world)
    *_, steps = play(env, [IMAGE, "<reason>No idea.</reason><answer>1900</answer>"])
    assert steps[-1][1] == pytest.approx(0.1)
    env = make(tiny_world, reward={"penalty": "subtractive"})
    *_, steps = play(env, [IMAGE, "<reason>No idea.</reason><answer>1900</answer>"])
    assert steps[-1][1] == pytest.approx(0.01)


def test_search_over_limit_ends_the_episode(tiny_world):
    env = make(tiny_world)
    *_, steps = play(env, [IMAGE, IMAGE])
    assert len(steps) == 2 and steps[-1][2]
    info = steps[-1][4]
    assert info["image_searches"] == 1 and info["score"] == 0.0 and steps[-1][1] == 0.0
    env = make(tiny_world, image_search_limit=0)
    *_, steps = play(env, [IMAGE])
    assert steps[-1][2] and steps[-1][4]["searches"] == 0


def test_search_on_last_turn_ends_the_episode(tiny_world):
    env = make(tiny_world, max_turns=2)
    *_, steps = play(env, [IMAGE, TEXT])
    assert steps[-1][2] and steps[-1][4]["text_searches"] == 0
    env = make(tiny_world, max_turns=1)
    *_, steps = play(env, [IMAGE])
    assert steps[-1][2] and steps[-1][4]["searches"] == 0 and steps[-1][1] == 0.0


def test_two_text_searches_allowed_but_format_zero(tiny_world):
    env = make(tiny_world, max_turns=4)
    *_, steps = play(env, [TEXT, TEXT, ANSWER])
    assert [s[2] for s in steps] == [False, False, True]
    assert steps[-1][4]["text_searches"] == 2 and steps[-1][4]["format_score"] == 0
    assert steps[-1][1] == pytest.approx(0.81)
    env = make(tiny_world, max_turns=5)
    *_, steps = play(env, [TEXT, TEXT, TEXT])
    assert steps[-1][2] and steps[-1][4]["text_searches"] == 2


def test_step_after_end_or_before_reset_is_an_error(tiny_world):
    env = make(tiny_world).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(ANSWER)
    env.reset(seed=0)
    env.step(ANSWER)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(ANSWER)


class ExplodingBackend:
    backend_id = "exploding"

    def image_search(self, image, top_k):
        raise ConnectionError("upstream down")

    def text_search(self, query, top_k):
        return SearchResults.failed("text", "HTTP 500 from provider")


def test_backend_failures_become_tool_errors(tiny_world):
    samples, _ = tiny_world
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=ExplodingBackend())
    *_, steps = play(env, [IMAGE, TEXT, ANSWER])
    assert [s[4]["tool_errors"] for s in steps] == [1, 2, 2]
    obs = steps[1][0]
    assert "[Search Error] The image search failed: ConnectionError: upstream down" in obs["messages"][2]["content"][0]["text"]
    assert "HTTP 500 from provider" in obs["messages"][4]["content"][0]["text"]
    assert steps[-1][1] == pytest.approx(0.91)


def test_long_actions_are_cut(tiny_world):
    env = make(tiny_world, max_action_chars=100)
    env.reset(seed=0)
    obs, reward, terminated, _, info = env.step("<reason>" + "x" * 500 + "</reason><answer>1887</answer>")
    assert terminated and info["action_truncated"] and info["score"] == 0.0
    assert len(obs["messages"][-1]["content"][0]["text"]) == 100


def test_reset_options_pick_samples(tiny_world):
    env = make(tiny_world)
    _, info = env.reset(options={"sample_id": "colour-q"})
    assert info["sample_id"] == "colour-q" and info["turn"] == 0
    _, info = env.reset(options={"index": 0})
    assert info["sample_id"] == "rbs-year"
    for bad in ({"index": 5}, {"index": -1}, {"sample_id": "nope"}, {"colour": 1}):
        with pytest.raises(ValueError):
            env.reset(options=bad)


def test_seeded_resets_cover_the_dataset_deterministically(tiny_world):
    env = make(tiny_world)
    ids = [env.reset(seed=seed)[1]["sample_id"] for seed in range(20)]
    assert ids == [env.reset(seed=seed)[1]["sample_id"] for seed in range(20)]
    assert set(ids) == {"rbs-year", "colour-q"}


def test_observations_never_contain_answers(tiny_world):
    env = make(tiny_world)
    samples, _ = tiny_world
    for sample in samples:
        obs, info = env.reset(options={"sample_id": sample.id})
        blob = json.dumps(obs["messages"]) + json.dumps(info)
        for gold in sample.gold:
            assert gold not in blob


def test_render_ansi(tiny_world):
    env = make(tiny_world, render_mode="ansi")
    play(env, [IMAGE, ANSWER])
    transcript = env.render()
    assert "[assistant]\n" + IMAGE in transcript and "<image 1>" in transcript
    quiet = make(tiny_world)
    quiet.reset(seed=0)
    assert quiet.render() is None


def test_unwrapped_dataset_is_public(tiny_world):
    samples, _ = tiny_world
    env = make(tiny_world)
    assert tuple(env.unwrapped.dataset) == tuple(samples)


@pytest.mark.parametrize("kwargs, bad", [
    ({"max_turns": 0}, "max_turns"),
    ({"image_search_limit": -1}, "image_search_limit"),
    ({"text_search_limit": -2}, "text_search_limit"),
    ({"dataset": "no-such-suite"}, "no-such-suite"),
    ({"dataset": ("no-such-loader", "x.parquet")}, "no-such-loader"),
    ({"prompt_style": "chatty"}, "chatty"),
    ({"render_mode": "human"}, "human"),
    ({"search": 42}, "int"),
    ({"dataset": []}, "empty"),
])
def test_bad_constructor_input_names_the_value(tiny_world, kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        make(tiny_world, **kwargs)


def test_sample_without_image_is_rejected():
    from mmsearch_gym.data import VQASample
    with pytest.raises(ValueError, match="no image"):
        VQASample("s1", None, "q?", ("a",))  # type: ignore[arg-type]


DETERMINISM_SCRIPT = r"""
import hashlib, json, sys
import gymnasium as gym, numpy as np
sys.path.insert(0, "tests")
from conftest import build_tiny_world
world = build_tiny_world()
env = gym.make("mmsearch_gym:ImageSearchVQA-v0", dataset=world[0], search=world[1])
digest = hashlib.sha256()
for seed in range(6):
    obs, info = env.reset(seed=seed)
    for action in %r:
        obs, reward, term, trunc, info = env.step(action)
        digest.update(json.dumps([obs["messages"], reward, term, info], sort_keys=True).encode())
        for image in obs["images"]:
            digest.update(image.tobytes())
        if term:
            break
print(digest.hexdigest())
"""


def test_gym_make_by_string_is_deterministic_across_processes(tmp_path):
    script = DETERMINISM_SCRIPT % ([IMAGE, TEXT, ANSWER],)
    digests = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              cwd=str(_repo_root())).stdout.strip() for _ in range(2)}
    assert len(digests) == 1 and len(digests.pop()) == 64


def _repo_root():
    from pathlib import Path
    return Path(__file__).resolve().parents[1]


def test_default_make_without_bundled_suite_says_what_to_pass(monkeypatch):
    from mmsearch_gym.data import suites

    monkeypatch.setattr(suites, "SUITES", {})  # an installation without the bundled package data
    with pytest.raises(ValueError, match="dataset="):
        gym.make("ImageSearchVQA-v0")


def test_direct_env_class_matches_registry(tiny_world):
    samples, backend = tiny_world
    env = ImageSearchVQAEnv(dataset=samples, search=backend)
    obs, _ = env.reset(seed=3)
    obs2, _ = make(tiny_world).reset(seed=3)
    assert obs["messages"] == obs2["messages"]
    assert all(np.array_equal(a, b) for a, b in zip(obs["images"], obs2["images"]))


def test_unknown_env_kwarg_is_one_line_without_the_dataset(tiny_world):
    """Regression: a TypeError from the constructor made gymnasium print every kwarg, the whole
    dataset included."""
    with pytest.raises(ValueError) as caught:
        make(tiny_world, foo=1)
    message = str(caught.value)
    assert "['foo']" in message and "valid arguments" in message and "rules" in message
    assert "\n" not in message and "VQASample" not in message and len(message) < 400


@pytest.mark.parametrize("reward, fragment", [
    ({"per_search": "false"}, "per_search must be true or false"),
    ({"per_serach": True}, "unknown reward field(s) ['per_serach']; valid fields:"),
])
def test_reward_dict_is_checked(tiny_world, reward, fragment):
    with pytest.raises(ValueError) as caught:
        make(tiny_world, reward=reward)
    assert fragment in str(caught.value)


class FloodingBackend:
    """Returns more items than asked for."""

    backend_id = "flooding"

    def __init__(self, thumbnail):
        self.thumbnail = thumbnail

    def image_search(self, image, top_k):
        return SearchResults("image", tuple(SearchItem(f"t{i}", f"u{i}", thumbnail=self.thumbnail)
                                            for i in range(top_k + 4)))

    def text_search(self, query, top_k):
        return SearchResults("text", tuple(SearchItem(f"t{i}", f"u{i}", "s") for i in range(top_k + 4)))


def test_results_beyond_top_k_are_cut(tiny_world):
    """Regression: extra items became extra thumbnails, outside observation_space."""
    samples, _ = tiny_world
    thumb = EncodedImage.from_array(np.zeros((4, 4, 3), np.uint8))
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=FloodingBackend(thumb), top_k=2)
    env.reset(seed=0)
    obs, _, _, _, info = env.step(IMAGE)
    assert len(obs["images"]) == 3 and obs in env.observation_space
    assert info["search"]["items"] == 2 and len(info["search_results"][0]["items"]) == 2
    obs, _, _, _, info = env.step(TEXT)
    assert info["search"]["items"] == 2 and obs in env.observation_space


def _open_cache_files() -> int:
    from pathlib import Path
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to count open files")
    count = 0
    for fd in fds.iterdir():
        try:
            count += "cache.db" in str(fd.readlink())
        except OSError:
            pass
    return count


def test_close_closes_the_cache_the_env_opened(monkeypatch):
    """Regression: the SQLite cache opened for search='replay' stayed open after env.close()."""
    from mmsearch_gym.cache import SearchCache

    closed = []
    original = SearchCache.close
    monkeypatch.setattr(SearchCache, "close", lambda self: (closed.append(self), original(self))[1])
    before = _open_cache_files()
    env = gym.make("ImageSearchVQA-v0")
    env.reset(seed=0, options={"index": 0})
    env.step("<reason>r</reason><search><img></search>")
    env.close()
    assert closed == [env.unwrapped.search.cache]
    assert _open_cache_files() <= before  # no SQLite handle of ours left behind
    env.close()  # closing twice is fine
    assert len(closed) == 1


def test_close_leaves_a_passed_backend_open(tiny_world):
    samples, backend = tiny_world
    closed = []
    backend.close = lambda: closed.append(True)
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=backend)
    env.close()
    assert closed == []


def test_info_carries_the_question_and_structured_results(tiny_world):
    env = make(tiny_world)
    _, info = env.reset(seed=0, options={"sample_id": "rbs-year"})
    assert info["question"].startswith("In which year") and info["search_results"] == []
    env.step(IMAGE)
    _, _, _, _, info = env.step(TEXT)
    image, text = info["search_results"]
    assert image["kind"] == "image" and image["items"][0]["title"] == "Red Banner Society - Encyclopedia"
    assert text == {"kind": "text", "query": "Red Banner Society founded", "error": None,
                    "items": [{"title": "History", "url": "https://example.org/h",
                               "snippet": "The Red Banner Society was founded in 1887."}]}
