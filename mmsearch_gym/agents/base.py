"""The `Agent` protocol every policy implements (DESIGN §8).

An agent sees exactly what a model would see: the env's observation (`images` + chat `messages`)
and returns its whole assistant turn as text. `reset(info)` starts an episode (the reset `info`,
never the gold answer). `act_batch` lets batched models advance many episodes in one forward pass;
`BatchedFromSingle` gives any single-episode agent a default `act_batch`.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

Observation = Mapping[str, Any]


@runtime_checkable
class Agent(Protocol):
    name: str

    def reset(self, info: Mapping[str, Any]) -> None: ...

    def act(self, obs: Observation) -> str: ...


class AgentBase:
    """Convenience base: a no-op `reset`, a default `act_batch` built on `act`, and an agent card."""

    name: str = "agent"

    def reset(self, info: Mapping[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def act(self, obs: Observation) -> str:
        raise NotImplementedError

    def reset_batch(self, infos: Sequence[Mapping[str, Any]]) -> None:
        """Start several episodes at once; single-episode agents keep no per-episode state here."""
        for info in infos:
            self.reset(info)

    def act_batch(self, observations: Sequence[Observation]) -> list[str]:
        return [self.act(obs) for obs in observations]

    def card(self) -> dict[str, Any]:
        """What the run manifest records about this agent (model, parameters, …)."""
        return {"name": self.name, "class": type(self).__qualname__}
