"""Verified re-scoring of a leaderboard submission: re-play every trajectory, trust no number.

Why re-play: the env is deterministic given the suite, the pinned (strictly replayed) search cache,
the env settings and the seed, so each episode's record — reward, score, messages, searches — is a
function of its actions alone. The validator feeds the recorded actions to a fresh env and requires
every recorded field to equal what the env produces, then recomputes the metrics from the replayed
records. An edited reward or answer, a trajectory that could not have come from the env (a search
result altered, actions after the episode ended), a missing or duplicated episode, or a run against
another suite or cache is each rejected with a reason naming the episode and the field.

Why it never raises on a package: one hostile file in a leaderboard's `submissions/` must not stop the
site from being built for everyone else. Known hostile content gets a specific reason (a search the
pinned cache never recorded, text that is not Unicode, an absurd number); anything else that goes wrong
while reading or re-playing a package becomes a rejection naming the exception type.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import gymnasium as gym

from mmsearch_gym.benchmarks.metrics import compute_metrics
from mmsearch_gym.benchmarks.pinned import PinnedSuite
from mmsearch_gym.benchmarks.runner import EpisodeSlot, RunSpec, build_manifest, episode_record, start_episode
from mmsearch_gym.benchmarks.submission import (
    AGENT_CARD_FILE, DEFAULT_LIMITS, EPISODES_FILE, REQUIRED_MANIFEST_FIELDS, SubmissionContents, SubmissionError,
    SubmissionLimits, agent_card_problems, canonical, read_submission,
)
from mmsearch_gym.checks import require_int
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.search.errors import CacheMiss

_SHOWN = 80


SpecResolver = Callable[[Mapping[str, Any]], Union[PinnedSuite, RunSpec]]


@dataclass
class ValidationReport:
    """The verdict on one package. `metrics` are recomputed from the re-played episodes (None when the
    package could not be re-played in full); `reasons` is empty exactly when `accepted`."""

    accepted: bool
    reasons: list[str]
    metrics: dict[str, Any] | None
    path: str = ""
    manifest: dict[str, Any] | None = None
    agent_card: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _short(value: Any) -> str:
    text = canonical(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


def _difference(got: Any, want: Any, path: str = "") -> tuple[str, str, str]:
    """(where, submitted, replayed) at the first place two JSON values differ, strings shown around
    the first differing character, so a reason points at the edit rather than at a common prefix."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want)):
            if key not in got or key not in want or canonical(got[key]) != canonical(want[key]):
                if key not in got or key not in want:
                    return f"{path}.{key}", _short(got.get(key, "<absent>")), _short(want.get(key, "<absent>"))
                return _difference(got[key], want[key], f"{path}.{key}")
    if isinstance(got, list) and isinstance(want, list):
        for position, (a, b) in enumerate(zip(got, want)):
            if canonical(a) != canonical(b):
                return _difference(a, b, f"{path}[{position}]")
        return path, f"{len(got)} items", f"{len(want)} items"
    if isinstance(got, str) and isinstance(want, str):
        at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        start = max(0, at - 30)
        return path, _excerpt(got, start), _excerpt(want, start)
    return path, _short(got), _short(want)


def _excerpt(text: str, start: int) -> str:
    piece = text[start:start + 60]
    return ("…" if start else "") + canonical(piece) + ("…" if start + 60 < len(text) else "")


def _mismatch(name: str, got: Any, want: Any) -> str:
    where, submitted, replayed = _difference(got, want)
    at = f" differs at {where}:" if where else " is"
    return f"field {name!r}{at} {submitted} but the replay gives {replayed}"


# -- manifest ---------------------------------------------------------------------------------------------

class _NoAgent:
    name = "validator"


def _manifest_problems(manifest: Mapping[str, Any], pinned: PinnedSuite, env: gym.Env) -> list[str]:
    problems = [f"manifest.json has no {key!r}" for key in REQUIRED_MANIFEST_FIELDS if key not in manifest]
    if problems:
        return problems
    expected = build_manifest(pinned.run_spec(), _NoAgent(), env)  # type: ignore[arg-type]
    if manifest["suite_hash"] != pinned.suite_hash:
        problems.append(f"manifest.json suite_hash is {manifest['suite_hash']!r} but the pinned suite's is "
                        f"{pinned.suite_hash!r} (a different or modified suite)")
    if manifest["cache_bundle_hash"] != pinned.cache_bundle_hash:
        problems.append(f"manifest.json cache_bundle_hash is {manifest['cache_bundle_hash']!r} but the pinned "
                        f"cache bundle's is {pinned.cache_bundle_hash!r} (other search results)")
    for key in ("env_id", "episodes"):
        if canonical(manifest[key]) != canonical(expected[key]):
            problems.append(f"manifest.json {key} is {_short(manifest[key])} but the pinned suite has "
                            f"{_short(expected[key])}")
    for key in ("env", "reward"):
        got, want = manifest[key], expected[key]
        if not isinstance(got, dict):
            problems.append(f"manifest.json {key} must be an object, got {_short(got)}")
            continue
        for name in sorted(set(got) | set(want)):
            if canonical(got.get(name)) != canonical(want.get(name)):
                problems.append(f"manifest.json {key}.{name} is {_short(got.get(name))} but the pinned suite uses "
                                f"{_short(want.get(name))}")
    try:
        require_int("seed", manifest["seed"], low=0)
    except ValueError:
        problems.append(f"manifest.json seed must be an integer >= 0, got {_short(manifest['seed'])}")
    return problems


# -- episodes ---------------------------------------------------------------------------------------------

def _index_episodes(episodes: Sequence[tuple[int, Any]], count: int) -> tuple[dict[int, dict[str, Any]], list[str]]:
    """Episode index -> record, with every missing, duplicated, unknown or index-less episode reported."""
    problems: list[str] = []
    lines: dict[int, list[int]] = {}
    records: dict[int, dict[str, Any]] = {}
    for line, record in episodes:
        index = record.get("index") if isinstance(record, dict) else None
        if not isinstance(record, dict):
            problems.append(f"{EPISODES_FILE} line {line} is not a JSON object")
        elif isinstance(index, bool) or not isinstance(index, int):
            problems.append(f"{EPISODES_FILE} line {line} has no integer 'index' (got {_short(index)})")
        elif not 0 <= index < count:
            problems.append(f"{EPISODES_FILE} line {line}: unknown episode index {index}; the suite has {count} "
                            f"samples (0..{count - 1})")
        else:
            lines.setdefault(index, []).append(line)
            records.setdefault(index, record)
    for index, at in sorted(lines.items()):
        if len(at) > 1:
            problems.append(f"episode {index} is duplicated ({EPISODES_FILE} lines {', '.join(map(str, at))})")
    missing = [index for index in range(count) if index not in lines]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (f", … ({len(missing)} in all)" if len(missing) > 10 else "")
        problems.append(f"episodes missing from {EPISODES_FILE}: {shown}")
    return records, problems


def _replay(env: gym.Env, sample: VQASample, index: int, seed: int, record: Mapping[str, Any]
            ) -> tuple[dict[str, Any] | None, list[str]]:
    """The record `evaluate` would have written for these actions, or the reasons it cannot exist."""
    label = f"episode {index} ({sample.id})"
    actions, error = record.get("actions"), record.get("error")
    if not isinstance(actions, list) or not all(isinstance(action, str) for action in actions):
        return None, [f"{label}: field 'actions' must be a list of strings, got {_short(actions)}"]
    if error is not None and (not isinstance(error, str) or not error):
        return None, [f"{label}: field 'error' must be null or a non-empty string, got {_short(error)}"]
    slot: EpisodeSlot = start_episode(env, index, seed)
    ended_at, reward = None, 0.0
    for position, action in enumerate(actions, 1):
        slot.actions.append(action)
        try:
            slot.obs, step_reward, terminated, truncated, slot.info = slot.env.step(action)
        except CacheMiss as miss:
            return None, [f"{label}: action {position} makes a search that the pinned cache never recorded "
                          f"({_missed(miss)}); a run on the pinned suite only makes searches its cache holds"]
        if "search" in slot.info:
            slot.searches.append(slot.info["search"])
        if terminated or truncated:
            ended_at, reward = position, float(step_reward)
            break
    if ended_at is not None and ended_at < len(actions):
        return None, [f"{label}: field 'actions' continues after the episode ended at action {ended_at} of "
                      f"{len(actions)} (the env accepts no action after the final turn)"]
    if error is None and ended_at is None:
        return None, [f"{label}: the episode has not ended after its {len(actions)} action(s); a finished "
                      "episode ends with an answer or on its last turn"]
    if error is not None and ended_at is not None:
        return None, [f"{label}: field 'error' says the agent failed, but its actions finished the episode"]
    expected = episode_record(slot, sample, slot.info, reward, error=error)
    return expected, _field_problems(label, record, expected)


def _missed(miss: CacheMiss) -> str:
    if miss.kind == "image":
        return f"an image search for the image with digest {miss.image_digest}"
    return f"a {miss.kind} search for {_short(miss.query)}"


def _field_problems(label: str, record: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    want = dict(_json_roundtrip(expected))
    problems = [f"{label}: unexpected field {name!r}" for name in sorted(set(record) - set(want))]
    for name in sorted(want):
        if name not in record:
            problems.append(f"{label}: field {name!r} is missing")
        elif canonical(record[name]) != canonical(want[name]):
            problems.append(f"{label}: {_mismatch(name, record[name], want[name])}")
    return problems


def _json_roundtrip(value: Any) -> Any:
    """The value as it reads back from JSON (tuples become lists), for exact comparison."""
    return json.loads(canonical(value))


def _metrics_problems(submitted: Any, replayed: Any, path: str = "") -> list[str]:
    if isinstance(submitted, dict) and isinstance(replayed, dict):
        problems: list[str] = []
        for key in sorted(set(submitted) | set(replayed)):
            where = f"{path}.{key}" if path else key
            if key not in replayed:
                problems.append(f"metrics.json has {where}, which the replayed episodes do not give")
            elif key not in submitted:
                problems.append(f"metrics.json lacks {where} (the replayed episodes give {_short(replayed[key])})")
            else:
                problems.extend(_metrics_problems(submitted[key], replayed[key], where))
        return problems
    if canonical(submitted) != canonical(replayed):
        return [f"metrics.json {path or 'value'} is {_short(submitted)} but the replayed episodes give "
                f"{_short(replayed)}"]
    return []


def _budget_problems(card: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> list[str]:
    budget = card.get("search_budget")
    if isinstance(budget, bool) or not isinstance(budget, int):
        return []
    over = [record for record in records if record["searches"] > budget]
    if not over:
        return []
    first = over[0]
    return [f"{AGENT_CARD_FILE} search_budget is {budget}, but episode {first['index']} ({first['sample_id']}) "
            f"made {first['searches']} searches ({len(over)} episode(s) over budget)"]


# -- the validator ----------------------------------------------------------------------------------------

def _resolve(suite: PinnedSuite | SpecResolver, manifest: Mapping[str, Any]) -> PinnedSuite:
    if isinstance(suite, PinnedSuite):
        return suite
    if isinstance(suite, RunSpec):
        return PinnedSuite.from_spec(suite)
    resolved = suite(manifest)
    if isinstance(resolved, RunSpec):
        return PinnedSuite.from_spec(resolved)
    if not isinstance(resolved, PinnedSuite):
        raise TypeError(f"the suite resolver returned {type(resolved).__name__}, not a PinnedSuite or RunSpec")
    return resolved


def _capped(reasons: list[str], max_reasons: int) -> list[str]:
    """At most `max_reasons` reasons, each printable: a lone surrogate quoted from a package is shown
    as its escape (`\\ud800`), so the report can be printed and written as UTF-8."""
    shown = [reason.encode("utf-8", "backslashreplace").decode("utf-8") for reason in reasons]
    if len(shown) <= max_reasons:
        return shown
    return shown[:max_reasons] + [f"… and {len(shown) - max_reasons} more problems"]


def _unexpected(error: Exception, where: str) -> str:
    message = str(error)
    message = message if len(message) <= 300 else message[:299] + "…"
    return f"{where} failed with {type(error).__name__}: {message}"


def _replay_all(report: ValidationReport, contents: SubmissionContents, pinned: PinnedSuite) -> list[str]:
    """Every reason found by checking the manifest and re-playing the episodes; sets `report.metrics`
    when every episode could be re-played."""
    env = pinned.run_spec().make_env()
    try:
        manifest_problems = _manifest_problems(contents.manifest, pinned, env)
        if manifest_problems:  # re-playing against other rules would only bury the cause
            return manifest_problems
        records, reasons = _index_episodes(contents.episodes, len(pinned.samples))
        seed = contents.manifest["seed"]
        replayed: dict[int, dict[str, Any]] = {}
        for index in sorted(records):
            sample = pinned.samples[index]
            try:
                expected, problems = _replay(env, sample, index, seed, records[index])
            except Exception as error:  # noqa: BLE001 - one odd episode is a reason, not a crash
                expected, problems = None, [_unexpected(error, f"episode {index} ({sample.id}): re-playing it")]
            reasons += problems
            if expected is not None:
                replayed[index] = _json_roundtrip(expected)
    finally:
        env.close()
    if len(replayed) == len(pinned.samples):
        report.metrics = compute_metrics([replayed[index] for index in sorted(replayed)])
        reasons += _metrics_problems(contents.metrics, report.metrics)
    return reasons + _budget_problems(contents.agent_card, list(replayed.values()))


def _check(zip_path: str | os.PathLike[str], suite: PinnedSuite | SpecResolver, limits: SubmissionLimits,
           report: ValidationReport) -> None:
    try:
        contents = read_submission(zip_path, limits)
    except SubmissionError as error:
        report.reasons = error.reasons
        return
    report.manifest, report.agent_card = contents.manifest, contents.agent_card
    report.reasons = [f"{AGENT_CARD_FILE}: {problem}" for problem in agent_card_problems(contents.agent_card)]
    try:
        pinned = _resolve(suite, contents.manifest)
    except (ValueError, KeyError, LookupError) as error:
        report.reasons.append(f"no pinned suite for this manifest (suite {_short(contents.manifest.get('suite'))}): "
                              f"{error}")
        return
    report.reasons += _replay_all(report, contents, pinned)


def validate_submission(zip_path: str | os.PathLike[str], suite: PinnedSuite | SpecResolver, *,
                        limits: SubmissionLimits = DEFAULT_LIMITS, max_reasons: int = 100) -> ValidationReport:
    """Read a package safely, check it against the pinned suite, re-play every episode and recompute
    the metrics. `suite` is a `PinnedSuite`, or a resolver `manifest -> PinnedSuite | RunSpec` for
    leaderboards hosting several suites. Never raises because of the package's content: whatever goes
    wrong becomes a reason, and `accepted` is true exactly when there is none."""
    require_int("max_reasons", max_reasons, low=1)
    if not isinstance(suite, (PinnedSuite, RunSpec)) and not callable(suite):
        raise TypeError("suite must be a PinnedSuite or a callable manifest -> PinnedSuite, got "
                        f"{type(suite).__name__}")
    report = ValidationReport(False, [], None, str(zip_path))
    try:
        _check(zip_path, suite, limits, report)
    except Exception as error:  # noqa: BLE001 - one package must never stop a leaderboard build
        report.reasons.append(_unexpected(error, "validating the package"))
        report.metrics = None
    report.reasons = _capped(report.reasons, max_reasons)
    report.accepted = not report.reasons
    return report


__all__ = ["PinnedSuite", "SpecResolver", "ValidationReport", "validate_submission"]
