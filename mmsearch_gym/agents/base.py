"""The `Agent` protocol every policy implements.

An agent sees exactly what a model would see: the env's observation (`images` + chat `messages`)
and returns its whole assistant turn as text. `reset(info)` starts an episode (the reset `info`:
sample id and category, never the gold answer). `act_batch(observations, infos)` advances many
episodes at once (one forward pass for batched models); `infos[i]` is the latest info of episode i.

Agents keep no per-episode state beyond what `obs` and `info` carry (the turn number is the count
of assistant messages in `obs`), so the same agent object can play interleaved episodes.

`AgentBase` is the convenience base of every agent; `LocalModelAgent` that of the agents running a local
model folder (transformers, vLLM).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from mmsearch_gym.envs.types import Observation
from mmsearch_gym.hf.messages import to_hf_messages
from mmsearch_gym.hf.model_files import local_model_dir, sha256_text, weights_fingerprint
from mmsearch_gym.hf.processor import chat_template_of, load_processor
from mmsearch_gym.hf.stopping import check_stop_strings

__all__ = ["Agent", "AgentBase", "AgentBatchError", "AgentError", "LocalModelAgent", "Observation"]


class AgentError(RuntimeError):
    """A model back end failed to produce this turn (after any retries). The evaluator records it
    for the episode and goes on; it never means the agent object is unusable."""


class AgentBatchError(AgentError):
    """Some episodes of an `act_batch` call failed.

    `actions[i]` is episode i's action, or None where it failed; `errors` maps those indices to
    their `AgentError`.
    """

    def __init__(self, message: str, actions: list[str | None], errors: dict[int, AgentError]) -> None:
        super().__init__(message)
        self.actions = actions
        self.errors = errors


@runtime_checkable
class Agent(Protocol):
    name: str

    def reset(self, info: Mapping[str, Any]) -> None: ...

    def act(self, obs: Observation) -> str: ...


class AgentBase:
    """Convenience base: `reset` keeps the episode's info in `self.info`; `act_batch` sets
    `self.info` to each episode's latest info and calls `act`; `card()` describes the agent."""

    name: str = "agent"
    info: Mapping[str, Any] = {}

    def reset(self, info: Mapping[str, Any]) -> None:
        self.info = info

    def act(self, obs: Observation) -> str:
        raise NotImplementedError

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        if len(observations) != len(infos):
            raise ValueError(f"act_batch got {len(observations)} observations but {len(infos)} infos")
        actions = []
        for obs, info in zip(observations, infos):
            self.info = info
            actions.append(self.act(obs))
        return actions

    def card(self) -> dict[str, Any]:
        """What the run manifest records about this agent (model, parameters, …)."""
        return {"name": self.name, "class": type(self).__qualname__}


class LocalModelAgent(AgentBase):
    """What the transformers and vLLM agents share: a local model folder (never downloaded), its processor
    and chat template, the prompt rendering, batching, and the model fields of the run card.

    Subclasses call `_open_model_folder` first in `__init__` and implement `_generate(observations)`.
    """

    model_path: Path
    processor: Any
    chat_template: str
    chat_template_kwargs: dict[str, Any]
    stop: tuple[str, ...]
    max_batch_size: int | None = None
    """`act_batch` runs one `_generate` call per chunk of this many episodes (None: all at once)."""
    _fingerprint: dict[str, Any] | None = None

    def _open_model_folder(self, model_path: str | Path, stop: Sequence[str] | None,
                           processor_kwargs: Mapping[str, Any] | None,
                           chat_template_kwargs: Mapping[str, Any] | None, name: str | None) -> None:
        self.model_path = local_model_dir(model_path)
        self.stop = check_stop_strings(stop)
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        if name is not None:
            self.name = name
        self.processor = load_processor(self.model_path, **dict(processor_kwargs or {}))
        template = chat_template_of(self.processor)
        if template is None:
            raise ValueError(f"{str(self.model_path)!r} has no chat template (chat_template.jinja or "
                             "chat_template.json); the agent needs one to render dialogs")
        self.chat_template = template

    def render(self, obs: Observation) -> tuple[str, list[Any]]:
        """(prompt text, images in placeholder order) for one observation, by the model's chat template."""
        messages, images = to_hf_messages(obs)
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  **self.chat_template_kwargs)
        return text, images

    def act(self, obs: Observation) -> str:
        return self._generate([obs])[0]

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        if len(observations) != len(infos):
            raise ValueError(f"act_batch got {len(observations)} observations but {len(infos)} infos")
        size = self.max_batch_size or max(1, len(observations))
        actions: list[str] = []
        for start in range(0, len(observations), size):
            actions.extend(self._generate(observations[start:start + size]))
        return actions

    def _generate(self, observations: Sequence[Observation]) -> list[str]:
        raise NotImplementedError

    def card(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.model_path)
        return {**super().card(), "model_path": str(self.model_path), "weights": dict(self._fingerprint),
                "chat_template_sha256": sha256_text(self.chat_template), "stop": list(self.stop),
                "chat_template_kwargs": dict(self.chat_template_kwargs)}
