"""How a turn is generated: the sampling settings, the `GenerationConfig` built from them, and the
suppression of vision tokens.

Why one place: the transformers agent (evaluation) and the rollout collector (training) must
generate a turn the same way: same sampling fields, same end-of-sequence ids, same padding id, same
suppressed tokens. They once built these separately and disagreed about eos (the rollout also
stopped at the tokenizer's eos, the agent did not). `GenerationSettings` is also the `generation:`
section of a GRPO run configuration, so the YAML fields and the rollout's fields cannot drift apart.

Why a config of our own rather than the checkpoint's: `generate` fills every unset field from
`model.generation_config`, so a checkpoint's defaults (Qwen ships e.g. repetition_penalty=1.05,
top_k=1) would silently change what a run card says. `build_generation_config` keeps only the
checkpoint's token ids.

torch and transformers are imported inside functions.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from mmsearch_gym.checks import require_int, require_number

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["GenerationSettings", "SpecialIds", "build_generation_config", "special_ids",
           "suppress_tokens_processor", "using_generation_config"]


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling of one assistant turn. `max_new_tokens` is per turn (a turn also ends at the first stop
    string or eos). `temperature` 0 means greedy; with sampling, `top_p`/`top_k` filter (top_k 0: off).
    `repetition_penalty` 1.0 means none. `max_batch_size`: episodes per `generate` call (None: all)."""

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)  # frozen: normalise in place once
        set_("max_new_tokens", require_int("max_new_tokens", self.max_new_tokens, low=1))
        set_("temperature", require_number("temperature", self.temperature, low=0.0))
        set_("top_p", require_number("top_p", self.top_p, low=0.0, high=1.0, low_inclusive=False))
        set_("top_k", require_int("top_k", self.top_k, low=0))
        set_("repetition_penalty", require_number("repetition_penalty", self.repetition_penalty, low=0.0,
                                                  low_inclusive=False))
        if self.max_batch_size is not None:
            set_("max_batch_size", require_int("max_batch_size", self.max_batch_size, low=1))

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    @property
    def logprob_temperature(self) -> float:
        """The temperature log-probs are computed at (greedy decoding reports them at 1)."""
        return self.temperature if self.do_sample else 1.0

    def sampling_fields(self) -> dict[str, Any]:
        """The `GenerationConfig` fields these settings decide (filters are None when greedy: unused
        there, and a value would make transformers warn)."""
        sample = self.do_sample
        return {"max_new_tokens": self.max_new_tokens, "do_sample": sample,
                "temperature": self.temperature if sample else None, "top_p": self.top_p if sample else None,
                "top_k": self.top_k if sample else None, "repetition_penalty": self.repetition_penalty}


@dataclass(frozen=True)
class SpecialIds:
    """The token ids `generate` ends and pads rows with."""

    eos: tuple[int, ...]
    """Every id that ends a turn: the checkpoint's generation-config eos ids, then the tokenizer's eos
    (the chat template's end-of-turn token) when the config does not list it."""
    pad: int
    """The tokenizer's pad id, else the config's, else the first eos id; finished rows are filled with it."""
    bos: int | None = None


def _as_ids(value: Any) -> list[int]:
    if value is None:
        return []
    return [int(item) for item in value] if isinstance(value, (list, tuple)) else [int(value)]


def special_ids(model_generation_config: Any, tokenizer: Any) -> SpecialIds:
    """The eos/pad/bos ids for generating turns with this checkpoint and tokenizer (see `SpecialIds`)."""
    eos = _as_ids(getattr(model_generation_config, "eos_token_id", None))
    for token in _as_ids(getattr(tokenizer, "eos_token_id", None)):
        if token not in eos:
            eos.append(token)
    if not eos:
        raise ValueError("neither the model's generation config nor the tokenizer names an eos token; a turn "
                         "could never end before max_new_tokens")
    pads = _as_ids(getattr(tokenizer, "pad_token_id", None)) or _as_ids(
        getattr(model_generation_config, "pad_token_id", None)) or eos
    bos = getattr(model_generation_config, "bos_token_id", None)
    return SpecialIds(tuple(eos), pads[0], bos)


def build_generation_config(settings: GenerationSettings, model_generation_config: Any, tokenizer: Any,
                            **extra: Any) -> tuple[Any, SpecialIds]:
    """(`transformers.GenerationConfig`, its special ids) for `settings`: only the token ids come from the
    checkpoint's config; `extra` adds output fields (e.g. `output_logits=True`)."""
    from transformers import GenerationConfig

    ids = special_ids(model_generation_config, tokenizer)
    config = GenerationConfig(**settings.sampling_fields(), eos_token_id=list(ids.eos), pad_token_id=ids.pad,
                              bos_token_id=ids.bos, **extra)
    return config, ids


@contextlib.contextmanager
def using_generation_config(model: Any, config: Any) -> Iterator[None]:
    """Use `config` as the model's generation config for one call (a model being trained keeps its own
    between calls): `generate` fills unset fields from `model.generation_config`."""
    original = model.generation_config
    model.generation_config = config
    try:
        yield
    finally:
        model.generation_config = original


@functools.lru_cache(maxsize=1)
def _suppress_class() -> type:
    import torch
    from transformers import LogitsProcessor

    class SuppressTokens(LogitsProcessor):
        """-inf on `token_ids`, out of place. Out of place because `generate(output_logits=True)` keeps
        the very tensor the first processor receives as the "raw" logits, and the rollout reads its
        log-probs from them: writing in place would remove the suppressed tokens from the softmax the
        training forward computes. Ours rather than `suppress_tokens`/`bad_words_ids`, which build a
        vocabulary-sized mask every step (more than a tiny model's whole forward on a 152k vocabulary)."""

        def __init__(self, token_ids: Sequence[int]) -> None:
            self.token_ids = torch.tensor(list(token_ids), dtype=torch.long)

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            ids = self.token_ids.to(scores.device)
            return scores.index_fill(-1, ids[ids < scores.shape[-1]], float("-inf"))

    return SuppressTokens


def suppress_tokens_processor(token_ids: Sequence[int]) -> list[Any]:
    """The `logits_processor` entries that forbid `token_ids` (none when there are no ids)."""
    return [_suppress_class()(token_ids)] if token_ids else []
