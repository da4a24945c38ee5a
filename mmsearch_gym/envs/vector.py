"""Batched rollouts: what `AsyncVectorEnv` needs to move this env's observations between processes.

Why: `gym.make_vec("ImageSearchVQA-v0", num_envs=4, vectorization_mode="async")` builds an
`AsyncVectorEnv` with its default ``shared_memory=True``, which wants a fixed-size buffer per
observation. Ours have no fixed size (a variable number of images of any size, chat messages of any
length), so Gymnasium refused them. Gymnasium dispatches its shared-memory functions on the space's
type, so for the env's own `ObservationSpace` (a `spaces.Dict` subclass; other envs' spaces are not
touched) we register an implementation whose "shared memory" is a list held by a
`multiprocessing` manager: a worker stores its latest observation in its slot, and the parent reads
the slots when it hands the batch out. The batch has the same layout as with
``shared_memory=False`` or `SyncVectorEnv`: ``{"images": (obs 0 images, …), "messages": (…)}``.

Each observation is pickled twice (worker -> manager -> parent) instead of once, so
``vector_kwargs={"shared_memory": False}`` stays the faster choice; this module only makes the
default work.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from typing import Any

from gymnasium.vector.utils import create_shared_memory, read_from_shared_memory, write_to_shared_memory

from mmsearch_gym.envs.spaces import ObservationSpace


class SlotView(Sequence):
    """One key of the batched observation, read from the manager's slots when accessed.

    With ``copy=True`` (the default) the vector env deep-copies its batch before handing it out, which
    turns each view into a plain tuple (one manager round trip for all keys together); with
    ``copy=False`` the caller gets the views themselves, which always show the latest observations.
    """

    def __init__(self, slots: Any, key: str) -> None:
        self._slots, self._key = slots, key

    def _snapshot(self) -> list[Any]:
        return list(self._slots[:])

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(obs[self._key] for obs in self._slots[index])
        return self._slots[index][self._key]

    def __len__(self) -> int:
        return len(self._slots)

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[Any, ...]:
        # every key of one batch copy reads the same snapshot: one round trip, consistent keys
        marker = id(self._slots)
        snapshot = memo.get(marker)
        if snapshot is None:
            snapshot = memo[marker] = self._snapshot()
        return tuple(obs[self._key] if obs is not None else None for obs in snapshot)

    def __repr__(self) -> str:
        return f"SlotView({self._key!r}, {len(self)} envs)"


@create_shared_memory.register(ObservationSpace)
def _create_slots(space: ObservationSpace, n: int = 1, ctx: Any = multiprocessing) -> Any:
    manager = ctx.Manager()
    return manager.list([None] * n)  # the proxy keeps its manager alive in this process


@read_from_shared_memory.register(ObservationSpace)
def _read_slots(space: ObservationSpace, shared_memory: Any, n: int = 1) -> dict[str, SlotView]:
    return {key: SlotView(shared_memory, key) for key in space.spaces}


@write_to_shared_memory.register(ObservationSpace)
def _write_slot(space: ObservationSpace, index: int, value: Any, shared_memory: Any) -> None:
    shared_memory[index] = value
