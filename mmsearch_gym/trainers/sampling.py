"""How the rollout samples each turn, and what a logits-processor factory learns about each row.

`SamplingSettings` is `hf.GenerationSettings` (the `generation:` section of a GRPO config, and what the
transformers agent builds from its arguments) plus the two things only an episode loop decides: the
stop strings (the grammar's closing action tags by default) and whether vision tokens are suppressed.
Derived by inheritance, so a sampling field added to `GenerationSettings` reaches the YAML section, the
agent and the rollout at once; `SamplingSettings.from_generation` copies a config section over.
Pure Python (no torch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from mmsearch_gym.checks import require_bool
from mmsearch_gym.envs.grammar import ACTION_CLOSE_TAGS
from mmsearch_gym.hf.generation import GenerationSettings
from mmsearch_gym.hf.stopping import check_stop_strings

__all__ = ["LogitsProcessorFactory", "SamplingSettings", "TurnContext"]


@dataclass(frozen=True)
class SamplingSettings(GenerationSettings):
    """`GenerationSettings` plus `stop` (each turn ends at the first of these strings; default: the
    closing action tags) and `suppress_vision_tokens` (never sample vision special tokens). The
    rollout defaults to sampling at temperature 1; temperature 0 means greedy (log-probs then at 1)."""

    stop: tuple[str, ...] = ACTION_CLOSE_TAGS
    suppress_vision_tokens: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "stop", check_stop_strings(self.stop))
        require_bool("suppress_vision_tokens", self.suppress_vision_tokens)

    @classmethod
    def from_generation(cls, generation: GenerationSettings, **extra: Any) -> SamplingSettings:
        """The settings of a config's `generation:` section, with `extra` (stop, suppression) on top."""
        shared = {field.name: getattr(generation, field.name) for field in dataclasses.fields(GenerationSettings)}
        return cls(**shared, **extra)


@dataclass(frozen=True)
class TurnContext:
    """What a logits-processor factory learns about each row of a generate call."""

    row: int
    episode: int
    sample_id: str
    group_index: int
    turn: int
    input_length: int
    """Length of the left-padded input (generated ids start at this position)."""


LogitsProcessorFactory = Callable[[Sequence[TurnContext]], Sequence[Any]]
"""Returns extra `transformers.LogitsProcessor`s for one generate call (e.g. constrained decoding)."""
