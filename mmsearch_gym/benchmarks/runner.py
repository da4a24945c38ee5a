"""`evaluate`: play every sample of a suite with an agent, record each episode, compute metrics.

A run directory holds `manifest.json` (what was run), `episodes.jsonl` (one record per episode,
written as it finishes) and `metrics.json` (derived from the records). Runs are resumable: started
again on the same directory, only missing episodes are played, and the final metrics equal those
of an uninterrupted run because episode i is always reset with seed `seed + i` and sample i.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym

import mmsearch_gym
from mmsearch_gym.agents.base import Agent, AgentBase, AgentBatchError, AgentError
from mmsearch_gym.benchmarks.metrics import compute_metrics
from mmsearch_gym.checks import require_int
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.registration import ENV_ID
from mmsearch_gym.runs import (
    MANIFEST_FILE, METRICS_FILE, RECORDS_FILE, RESUME_KEYS, RecordsAppender, RunDirectoryError, check_resume,
    write_json_atomic,
)
from mmsearch_gym.search.combined import mode_of
from mmsearch_gym.search.keys import image_digest
from mmsearch_gym.search.types import SearchBackend

__all__ = ["MANIFEST_FILE", "METRICS_FILE", "RECORDS_FILE", "RESUME_KEYS", "RunSpec", "build_manifest", "dataset_hash",
           "evaluate"]

ProgressCallback = Callable[[int, int], None]


def dataset_hash(samples: Sequence[VQASample]) -> str:
    """sha256 over every sample's id, question, answers, category and image pixels."""
    hasher = hashlib.sha256()
    for sample in samples:
        hasher.update(json.dumps([sample.id, sample.question, list(sample.answers), list(sample.candidate_answers),
                                  sample.category], ensure_ascii=False).encode("utf-8"))
        hasher.update(image_digest(sample.rgb()).encode())
    return hasher.hexdigest()


@dataclass
class RunSpec:
    """What to run: the samples, the search backend and the env settings."""

    samples: Sequence[VQASample]
    search: SearchBackend
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    suite_name: str = "custom"
    suite_hash: str | None = None
    cache_bundle_hash: str | None = None
    server: str | None = None
    """Play on a `mmsearch-gym serve` server (`ws://host:port`) instead of in-process. The manifest still
    describes the local settings above, and the server's must match them, so the run directory is the
    same as a local run's (metrics byte for byte)."""

    def make_env(self) -> gym.Env:
        if self.server is not None:
            return gym.make(ENV_ID, server=self.server)
        return self.make_local_env()

    def make_local_env(self) -> gym.Env:
        return gym.make(ENV_ID, dataset=self.samples, search=self.search, **self.env_kwargs)


def check_server_settings(reference: gym.Env, remote: gym.Env) -> None:
    """Refuse to play on a server whose settings differ from the run's (they would change the numbers)."""
    local: Any = reference.unwrapped
    served: dict[str, Any] = dict(getattr(remote.unwrapped, "settings", {}))
    for name, value in served.items():
        mine = local.rules.name if name == "rules" else getattr(local, name, value)
        if mine != value:
            raise RunDirectoryError(f"the server plays {name}={value!r} but this run has {name}={mine!r}; "
                                    "start the server with the same settings (mmsearch-gym serve --env KEY=VALUE)")


def _agent_card(agent: Agent) -> dict[str, Any]:
    card = agent.card() if hasattr(agent, "card") else {"name": getattr(agent, "name", type(agent).__name__)}
    return json.loads(json.dumps(card, sort_keys=True, default=str))


def search_mode(search: SearchBackend) -> str:
    """How the run searched: a cache wrapper's mode (replay, replay_or_empty, record, live), "live"
    for a backend called directly, and for a `CombinedSearch` its sides' common mode or both of them
    (``image=replay;text=live``)."""
    return mode_of(search)


def cache_identity(search: SearchBackend) -> str | None:
    """The content hash of the cache a replay reads: the sha256 its exported bundle would carry, so a
    cache directory and its bundle have the same identity, and a resume against other recorded
    results is refused. For a `CombinedSearch`, the cache(s) its replaying side(s) read ("+"-joined
    when the two sides replay different caches). None when nothing is replayed, and in record mode
    (the cache grows during the run; the backend id and mode are pinned instead)."""
    caches: list[Any] = []
    for part in getattr(search, "parts", None) or (search,):
        cache = getattr(part, "cache", None)
        if mode_of(part) in ("replay", "replay_or_empty") and cache is not None and all(c is not cache for c in caches):
            caches.append(cache)
    if not caches:
        return None
    from mmsearch_gym.cache.bundle import entries_sha256  # benchmarks -> cache, only for cached replays
    from mmsearch_gym.cache.serialize import sha256_hex

    def identity(cache: Any) -> str:
        payloads = ((key, cache.read_payload(key)) for key in cache.keys())
        return entries_sha256((key, sha256_hex(payload)) for key, payload in payloads if payload is not None)

    return "+".join(identity(cache) for cache in caches)


def build_manifest(spec: RunSpec, agent: Agent, env: gym.Env) -> dict[str, Any]:
    """What was run: enough to re-derive every number, and the fields a resume must match."""
    unwrapped: Any = env.unwrapped  # an ImageSearchVQAEnv
    return {
        "package": "mmsearch-gym",
        "package_version": mmsearch_gym.__version__,
        "env_id": ENV_ID,
        "suite": spec.suite_name,
        "suite_hash": spec.suite_hash or dataset_hash(spec.samples),
        "episodes": len(spec.samples),
        "search_mode": search_mode(unwrapped.search),
        "search_backend": unwrapped.search.backend_id,
        "cache_bundle_hash": spec.cache_bundle_hash or cache_identity(unwrapped.search),
        "reward": unwrapped.reward_config.to_dict(),
        "env": {
            "max_turns": unwrapped.max_turns,
            "image_search_limit": unwrapped.image_search_limit,
            "text_search_limit": unwrapped.text_search_limit,
            "prompt_style": unwrapped.prompt_style,
            "top_k": unwrapped.top_k,
            "max_action_chars": unwrapped.max_action_chars,
            "rules": unwrapped.rules.name,
        },
        "seed": spec.seed,
        "agent": _agent_card(agent),
    }


@dataclass
class EpisodeSlot:
    """One episode in flight."""

    index: int
    env: gym.Env
    obs: Mapping[str, Any]
    info: dict[str, Any]
    actions: list[str] = field(default_factory=list)
    searches: list[dict[str, Any]] = field(default_factory=list)


def start_episode(slot_env: gym.Env, index: int, seed: int) -> EpisodeSlot:
    obs, info = slot_env.reset(seed=seed + index, options={"index": index})
    return EpisodeSlot(index=index, env=slot_env, obs=obs, info=info)


def _rules(env: gym.Env) -> Any:
    """The env's grammar rule set (`envs.rules.RuleSet`): records parse turns as the env did."""
    return getattr(env.unwrapped, "rules")


def episode_record(slot: EpisodeSlot, sample: VQASample, final_info: dict[str, Any], reward: float,
            error: str | None = None) -> dict[str, Any]:
    return {
        "index": slot.index,
        "sample_id": sample.id,
        "category": sample.category,
        "needs": sample.meta.get("needs") if sample.meta else None,
        "actions": slot.actions,
        "parsed": [{"kind": a.kind, "answer": a.answer, "query": a.query, "reason": a.reason}
                   for a in map(_rules(slot.env).parse_action, slot.actions)],
        "searches_made": slot.searches,
        "answer": final_info.get("answer"),
        "reward": round(float(reward), 10),
        "score": float(final_info.get("score", 0.0)),
        "format_score": int(final_info.get("format_score", 0)),
        "turns": int(final_info.get("turn", len(slot.actions))),
        "searches": int(final_info.get("searches", 0)),
        "image_searches": int(final_info.get("image_searches", 0)),
        "text_searches": int(final_info.get("text_searches", 0)),
        "tool_errors": int(final_info.get("tool_errors", 0)),
        "cache_hits": int(final_info.get("cache_hits", 0)),
        "cache_misses": int(final_info.get("cache_misses", 0)),
        "messages": [dict(m) for m in slot.obs["messages"]],
        "image_digests": [image_digest(image) for image in slot.obs["images"]],
        "error": error,
    }


def plays_interleaved(agent: Agent) -> bool:
    """Whether the agent can play several episodes in lockstep.

    Only `act_batch` tells an agent which episode each observation belongs to (`infos[i]`). An agent
    with `act` alone learns its episode from `reset` only, so after the next episode's `reset` it would
    act on the wrong episode's info; an `AgentBase` subclass that overrides `reset` but inherits
    `act_batch` may keep per-episode state there that `act_batch` does not switch. Both play one
    episode at a time (same records and metrics, without the batching)."""
    if not hasattr(agent, "act_batch"):
        return False
    cls = type(agent)
    return not (isinstance(agent, AgentBase) and getattr(cls, "act_batch") is AgentBase.act_batch
                and getattr(cls, "reset") is not AgentBase.reset)


def _agent_name(agent: Agent) -> str:
    return str(getattr(agent, "name", type(agent).__name__))


def _checked(agent: Agent, action: object) -> str | Exception:
    if isinstance(action, str):
        return action
    return AgentError(f"agent {_agent_name(agent)!r} returned {type(action).__name__}, not str, as its action")


def _checked_batch(agent: Agent, actions: object, expected: int) -> list[str | Exception]:
    """The batch's actions, each checked; a result of the wrong length or type is an error in every
    episode of the batch (actions cannot be matched to episodes), never a silently shorter batch."""
    if isinstance(actions, (list, tuple)) and len(actions) == expected:
        return [action if isinstance(action, Exception) else _checked(agent, action) for action in actions]
    what = f"{len(actions)} action(s)" if isinstance(actions, (list, tuple)) else f"a {type(actions).__name__}, not a list"
    error = AgentError(f"agent {_agent_name(agent)!r}: act_batch returned {what} for {expected} episode(s)")
    return [error] * expected


def _act(agent: Agent, slots: Sequence[EpisodeSlot]) -> list[str | Exception]:
    """Actions for every slot; an agent failure is attributed to its episode, never kills the run."""
    if not hasattr(agent, "act_batch"):
        return [_safe(agent, partial(agent.act, slot.obs)) for slot in slots]
    act_batch = getattr(agent, "act_batch")

    def one(slot: EpisodeSlot) -> str | Exception:
        return _checked_batch(agent, act_batch([slot.obs], [slot.info]), 1)[0]

    try:
        return _checked_batch(agent, act_batch([s.obs for s in slots], [s.info for s in slots]), len(slots))
    except AgentBatchError as error:  # the agent says which episodes failed
        actions = [error.errors.get(i, AgentError("no action")) if action is None else action
                   for i, action in enumerate(error.actions)]
        return _checked_batch(agent, actions, len(slots))
    except Exception as error:  # noqa: BLE001 - find which episode failed by asking one at a time
        if len(slots) == 1:
            return [error]
    return [_safe(agent, partial(one, slot)) for slot in slots]


def _safe(agent: Agent, call: Callable[[], object]) -> str | Exception:
    try:
        action = call()
    except Exception as error:  # noqa: BLE001
        return error
    return action if isinstance(action, Exception) else _checked(agent, action)


def _search_usage(search: SearchBackend) -> dict[str, Any] | None:
    """Billable calls and estimated cost of the live searches this process made (absent for replays
    and free backends, so replayed runs keep byte-identical metrics)."""
    report = getattr(search, "usage", None)
    usage = report() if callable(report) else None
    if not usage or not any(dict(usage.get("billable_calls") or {}).values()):
        return None
    return json.loads(json.dumps(usage, sort_keys=True, default=str))


def evaluate(agent: Agent, spec: RunSpec, out_dir: str | Path, *, batch_size: int = 1,
             progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Play every sample of `spec` with `agent`, writing the run directory `out_dir`; returns metrics.

    `batch_size` episodes are played in lockstep when the agent can tell them apart (see
    `plays_interleaved`). The envs are closed when the run ends, fails or is interrupted."""
    batch_size = require_int("batch_size", batch_size, low=1)
    if not spec.samples:
        raise ValueError("RunSpec.samples is empty: there is nothing to evaluate")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RunDirectoryError(f"cannot use {str(out_dir)!r} as a run directory: {error.strerror or error}") from None
    width = min(batch_size if plays_interleaved(agent) else 1, len(spec.samples))
    envs: list[gym.Env] = []
    try:
        for _ in range(width):
            envs.append(spec.make_env())
        reference = envs[0] if spec.server is None else spec.make_local_env()
        if reference is not envs[0]:
            envs.append(reference)  # closed with the others; never played on
            for env in envs[:width]:
                check_server_settings(reference, env)
        manifest = build_manifest(spec, agent, reference)
        check_resume(out_dir, manifest)
        write_json_atomic(out_dir / MANIFEST_FILE, manifest)
        records = RecordsAppender(out_dir / RECORDS_FILE)
        _play(agent, spec, envs[:width], records, progress)
    finally:
        for env in envs:
            env.close()
    metrics = compute_metrics(records.ordered())
    usage = _search_usage(spec.search)
    if usage:
        metrics["search_usage"] = usage
    write_json_atomic(out_dir / METRICS_FILE, metrics)
    return metrics


def _play(agent: Agent, spec: RunSpec, envs: Sequence[gym.Env], records: RecordsAppender,
          progress: ProgressCallback | None) -> None:
    """Play the episodes missing from `records` on `envs` (one episode in flight per env)."""
    total = len(spec.samples)
    queue = iter([index for index in range(total) if index not in records])
    if progress:
        progress(len(records), total)
    slots: list[EpisodeSlot] = []
    for env in envs:
        index = next(queue, None)
        if index is None:
            break
        slots.append(start_episode(env, index, spec.seed))
        agent.reset(slots[-1].info)

    while slots:
        actions = _act(agent, slots)
        still_running: list[EpisodeSlot] = []
        for slot, action in zip(slots, actions, strict=True):
            sample = spec.samples[slot.index]
            finished: dict[str, Any] | None = None
            if isinstance(action, Exception):
                finished = episode_record(slot, sample, slot.info, 0.0, error=f"{type(action).__name__}: {action}")
            else:
                slot.actions.append(action)
                slot.obs, reward, terminated, truncated, slot.info = slot.env.step(action)
                if "search" in slot.info:
                    slot.searches.append(slot.info["search"])
                if terminated or truncated:
                    finished = episode_record(slot, sample, slot.info, float(reward))
            if finished is None:
                still_running.append(slot)
                continue
            records.append(finished)
            if progress:
                progress(len(records), total)
            index = next(queue, None)
            if index is not None:
                new_slot = start_episode(slot.env, index, spec.seed)
                agent.reset(new_slot.info)
                still_running.append(new_slot)
        slots = still_running
