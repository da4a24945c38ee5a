"""The transformers agent (evaluation) and the rollout collector (training) end a turn at the same token.

Both generate through `mmsearch_gym.hf` (one generation config, one stop criterion, one suppression
processor). They once had separate copies that disagreed about eos: the rollout also stopped at the
tokenizer's eos (the chat template's end-of-turn token), the agent only at the checkpoint's
generation-config eos ids. The model here is the package's tiny Qwen2.5-VL whose saved generation config
lists only `<|endoftext|>`, so that old disagreement shows; scripted turns are forced token by token
with the same logits processor in both (see tiny_vlm_small_vocab).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_vlm_small_vocab import IMAGE_SEARCH, answer, build_small_vocab_vlm, forcing_factory, synth_env  # noqa: E402

from mmsearch_gym.agents.hf import TransformersAgent  # noqa: E402
from mmsearch_gym.trainers.rollout import RolloutCollector, SamplingSettings, TurnContext  # noqa: E402

MAX_NEW_TOKENS = 24
SCRIPTS = {
    "tag ends inside the turn": [answer("x") + "\n\nmore words after the tag"],
    "search then answer": [IMAGE_SEARCH + " trailing words", answer("y") + " extra"],
    "eos the checkpoint config does not list": ["<reason>no idea</reason> none<|im_end|> and more words"],
    "no tag, no eos: length limit": ["word " * (2 * MAX_NEW_TOKENS)],
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a generation config whose only eos is `<|endoftext|>` (the tokenizer's eos,
    `<|im_end|>`, ends the chat template's turns)."""
    source = build_small_vocab_vlm(tmp_path_factory.getbasetemp())
    target = tmp_path_factory.mktemp("parity") / "model"
    shutil.copytree(source, target)
    config_file = target / "generation_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    tokenizer = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    ids = {token["content"]: token["id"] for token in tokenizer["added_tokens"]}
    config["eos_token_id"] = [ids["<|endoftext|>"]]
    config_file.write_text(json.dumps(config), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def agent(model_dir: Path) -> TransformersAgent:
    return TransformersAgent(model_dir, max_new_tokens=MAX_NEW_TOKENS)


def _agent_turns(agent: TransformersAgent, sample_id: str, forcing: Any,
                 monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[list[int]]]:
    """Play the scripted episode with the agent: (actions, the ids generate sampled per turn)."""
    from transformers import LogitsProcessorList

    original = agent.model.generate
    sampled: list[list[int]] = []
    env = synth_env()[0]()
    obs, _ = env.reset(options={"sample_id": sample_id})

    def generate(**kwargs: Any) -> Any:
        length = kwargs["input_ids"].shape[1]
        turn = sum(1 for message in obs["messages"] if message["role"] == "assistant")
        contexts = [TurnContext(0, 0, sample_id, 0, turn, length)]
        kwargs["logits_processor"] = LogitsProcessorList([*kwargs["logits_processor"], *forcing(contexts)])
        output = original(**kwargs)
        sampled.append(output[0, length:].tolist())  # one row: generate ends exactly at its stop
        return output

    monkeypatch.setattr(agent.model, "generate", generate)
    actions = []
    done = False
    while not done:
        action = agent.act(obs)
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    env.close()
    return actions, sampled


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_agent_and_rollout_stop_at_the_same_token(case: str, agent: TransformersAgent, model_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForImageTextToText

    factory, samples = synth_env()
    sample = next(s for s in samples if s.meta["needs"] != "none")
    forcing = forcing_factory(agent.tokenizer, {(sample.id, 0): SCRIPTS[case]})

    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()  # the checkpoint's own config
    collector = RolloutCollector(agent.processor, factory, SamplingSettings(max_new_tokens=MAX_NEW_TOKENS,
                                                                            temperature=0.0),
                                 logits_processor_factory=forcing)
    (episode,) = collector.collect(model, [sample.id])
    collector.close()
    rollout_turns = [episode.completion_ids[start:end] for start, end in episode.turn_spans]

    actions, agent_turns = _agent_turns(agent, sample.id, forcing, monkeypatch)
    assert actions == episode.actions
    assert agent_turns == rollout_turns
    assert len(rollout_turns) == len(SCRIPTS[case])


def test_the_cases_end_where_intended(agent: TransformersAgent, model_dir: Path) -> None:
    """The parity cases above cover every way a turn ends: a stop string, the template's eos (absent from
    the checkpoint's config), and the length limit."""
    from transformers import AutoModelForImageTextToText

    factory, samples = synth_env()
    sample = next(s for s in samples if s.meta["needs"] != "none")
    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    im_end = agent.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end not in model.generation_config.eos_token_id
    ends = {}
    for case, script in SCRIPTS.items():
        forcing = forcing_factory(agent.tokenizer, {(sample.id, 0): script})
        collector = RolloutCollector(agent.processor, factory, SamplingSettings(max_new_tokens=MAX_NEW_TOKENS),
                                     logits_processor_factory=forcing)
        (episode,) = collector.collect(model, [sample.id])
        start, end = episode.turn_spans[0]
        ends[case] = (episode.completion_ids[end - 1] == im_end, episode.hit_length_limit, episode.actions[0])
    assert ends["eos the checkpoint config does not list"][:2] == (True, False)
    assert ends["tag ends inside the turn"] == (False, False, answer("x"))
    assert ends["search then answer"] == (False, False, IMAGE_SEARCH)
    assert ends["no tag, no eos: length limit"][1] is True
