"""The `Agent` protocol every policy implements.

An agent sees exactly what a model would see: the env's observation (`images` + chat `messages`)
and returns its whole assistant turn as text. `reset(info)` starts an episode (the reset `info`:
sample id and category, never the gold answer). `act_batch(observations, infos)` advances many
episodes at once (one forward pass for batched models); `infos[i]` is the latest info of episode i.

Agents keep no per-episode state beyond what `obs` and `info` carry (the turn number is the count
of assistant messages in `obs`), so the same agent object can play interleaved episodes.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from mmsearch_gym.envs.types import Observation

__all__ = ["Agent", "AgentBase", "AgentBatchError", "AgentError", "Observation"]


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
