"""`mmsearch_gym.hf`: generation settings (and the rollout's settings derived from them), special ids,
suppression, stop positions. (Its place in the layering is checked by test_layering.py.)"""

from __future__ import annotations

import dataclasses
import typing
from types import SimpleNamespace

import pytest

from mmsearch_gym.hf.generation import GenerationSettings, special_ids
from mmsearch_gym.hf.stopping import StopChecker, stop_position
from mmsearch_gym.trainers.sampling import SamplingSettings

# ------------------------------------------------------------------------------------------- settings

@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_new_tokens": 0}, "max_new_tokens must be an int >= 1, got 0"),
    ({"max_new_tokens": True}, "max_new_tokens must be an int >= 1, got True"),
    ({"temperature": -0.1}, "temperature must be a number >= 0.0"),
    ({"temperature": float("nan")}, "temperature must be a number"),
    ({"top_p": 0.0}, r"top_p must be a number in \(0.0, 1.0\], got 0.0"),
    ({"top_p": 1.5}, "top_p must be a number"),
    ({"top_k": -1}, "top_k must be an int >= 0"),
    ({"repetition_penalty": 0}, "repetition_penalty must be a number > 0.0"),
    ({"max_batch_size": 0}, "max_batch_size must be an int >= 1"),
])
def test_generation_settings_name_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GenerationSettings(**kwargs)
    with pytest.raises(ValueError, match=match):
        SamplingSettings(**kwargs)


def test_sampling_fields_greedy_and_sampled() -> None:
    greedy = GenerationSettings(max_new_tokens=8, temperature=0, top_p=0.5, top_k=3)
    assert greedy.sampling_fields() == {"max_new_tokens": 8, "do_sample": False, "temperature": None, "top_p": None,
                                        "top_k": None, "repetition_penalty": 1.0}
    assert greedy.logprob_temperature == 1.0
    sampled = GenerationSettings(temperature=0.7, top_k=3)
    assert sampled.sampling_fields()["temperature"] == 0.7 and sampled.sampling_fields()["top_k"] == 3
    assert sampled.logprob_temperature == 0.7
    assert isinstance(GenerationSettings(temperature=1).temperature, float)


def test_sampling_settings_are_derived_from_generation_settings() -> None:
    """The rollout's settings, the YAML `generation:` section and the agent's settings are one dataclass
    (plus the rollout's stop strings and suppression), so they cannot drift apart."""
    from mmsearch_gym.trainers.config import GRPORunConfig

    assert issubclass(SamplingSettings, GenerationSettings)
    assert typing.get_type_hints(GRPORunConfig)["generation"] is GenerationSettings
    section = GenerationSettings(max_new_tokens=7, temperature=0.5, top_p=0.9, top_k=4, repetition_penalty=1.1,
                                 max_batch_size=2)
    derived = SamplingSettings.from_generation(section, stop=("</x>",))
    assert {name: getattr(derived, name) for name in dataclasses.asdict(section)} == dataclasses.asdict(section)
    assert derived.stop == ("</x>",) and derived.suppress_vision_tokens is True
    assert SamplingSettings().stop == ("</answer>", "</search>", "</text_search>")
    with pytest.raises(TypeError, match="single string"):
        SamplingSettings(stop="</answer>")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="suppress_vision_tokens must be true or false"):
        SamplingSettings(suppress_vision_tokens="no")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- special ids

def test_special_ids_add_the_tokenizers_eos_and_prefer_its_pad() -> None:
    config = SimpleNamespace(eos_token_id=[2], pad_token_id=5, bos_token_id=1)
    tokenizer = SimpleNamespace(eos_token_id=7, pad_token_id=9)
    ids = special_ids(config, tokenizer)
    assert ids.eos == (2, 7) and ids.pad == 9 and ids.bos == 1
    # already listed: not twice; no tokenizer pad: the config's; neither: the first eos
    assert special_ids(SimpleNamespace(eos_token_id=7), tokenizer).eos == (7,)
    assert special_ids(config, SimpleNamespace(eos_token_id=7, pad_token_id=None)).pad == 5
    assert special_ids(SimpleNamespace(eos_token_id=3), SimpleNamespace(eos_token_id=None, pad_token_id=None)).pad == 3
    with pytest.raises(ValueError, match="names an eos token"):
        special_ids(SimpleNamespace(eos_token_id=None), SimpleNamespace(eos_token_id=None, pad_token_id=None))


# ---------------------------------------------------------------------------------------- suppression

def test_suppression_leaves_the_raw_logits_untouched() -> None:
    """generate(output_logits=True) keeps the tensor the first processor receives as the raw logits; the
    rollout's log-probs are read from them, so the suppression must not write into it."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from mmsearch_gym.hf.generation import suppress_tokens_processor

    (processor,) = suppress_tokens_processor([1, 3, 99])  # 99: past the vocabulary, ignored
    raw = torch.zeros(2, 5)
    out = processor(torch.zeros(2, 1, dtype=torch.long), raw)
    assert torch.equal(raw, torch.zeros(2, 5))
    assert torch.isinf(out[:, [1, 3]]).all() and (out[:, [0, 2, 4]] == 0).all()
    assert suppress_tokens_processor([]) == []


# ------------------------------------------------------------------------------------------- stopping

class _CharTokenizer:
    """One character per id (id = code point); ids >= 1000 are special and decode to nothing."""

    @staticmethod
    def decode(ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids if i < 1000)


def test_stop_position_reasons() -> None:
    checker = StopChecker(("</a>",))
    tokenizer = _CharTokenizer()
    text = [ord(c) for c in "xy</a>zz"]
    assert stop_position(text, {1001}, tokenizer, checker) == (6, "stop")
    assert stop_position([ord("x"), 1001, 0, 0], {1001}, tokenizer, checker) == (2, "eos")
    assert stop_position([ord("x")] * 4, {1001}, tokenizer, checker) == (4, "length")
    assert stop_position(text, {1001}, tokenizer, StopChecker(())) == (8, "length")  # no stop strings
