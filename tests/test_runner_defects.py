"""Evaluation-runner defects found by adversarial testing (issue 15), each pinned by a test: a lone
surrogate, a wrong-length act_batch, act-only agents in a batch, torn/corrupt records on resume, a
resume with another search mode or cache, and envs left open."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import pytest

from conftest import build_tiny_world
from mmsearch_gym.agents.base import AgentBase
from mmsearch_gym.agents.baselines import RAGWorkflowAgent, ScriptedAgent
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate, plays_interleaved
from mmsearch_gym.cache import CachedSearchBackend
from mmsearch_gym.runs import RecordsError, RecordsFile, RunMismatch

ANSWERS = {"rbs-year": "1887", "colour-q": "blue"}


def _answer(text: str) -> str:
    return f"<reason>r</reason><answer>{text}</answer>"


def test_a_lone_surrogate_is_recorded_and_the_run_goes_on(tmp_path):
    samples, backend = build_tiny_world()
    action = _answer("bl\ud800ue")
    metrics = evaluate(ScriptedAgent([action]), RunSpec(samples, backend), tmp_path)
    assert metrics["episodes"] == 2 and metrics["agent_errors"] == 0
    records = RecordsFile(tmp_path / "episodes.jsonl").ordered()
    assert [r["actions"] for r in records] == [[action], [action]] and records[0]["answer"] == "bl\ud800ue"
    again = evaluate(ScriptedAgent([action]), RunSpec(samples, backend), tmp_path)  # the rerun resumes, too
    assert again == metrics


class FixedLengthBatch(AgentBase):
    """A batched agent whose act_batch always returns `count` actions, whatever it was asked."""

    name = "fixed-length"

    def __init__(self, count: int) -> None:
        self.count = count

    def act_batch(self, observations: Sequence[Any], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        return [_answer("blue")] * self.count


@pytest.mark.parametrize("count", [1, 3])
def test_a_wrong_length_act_batch_is_an_error_in_every_episode_not_a_lost_episode(tmp_path, count):
    samples, backend = build_tiny_world()
    metrics = evaluate(FixedLengthBatch(count), RunSpec(samples, backend), tmp_path, batch_size=2)
    assert metrics["episodes"] == 2 and metrics["agent_errors"] == 2
    for record in RecordsFile(tmp_path / "episodes.jsonl").ordered():
        assert record["error"] == (f"AgentError: agent 'fixed-length': act_batch returned {count} action(s) "
                                   "for 2 episode(s)")


def test_a_non_string_action_is_an_error_of_its_episode(tmp_path):
    samples, backend = build_tiny_world()
    metrics = evaluate(ScriptedAgent(lambda obs, info: None if info["sample_id"] == "rbs-year" else _answer("blue")),
                       RunSpec(samples, backend), tmp_path, batch_size=2)
    assert metrics["agent_errors"] == 1 and metrics["accuracy"] == 0.5
    assert "returned NoneType, not str" in RecordsFile(tmp_path / "episodes.jsonl").records[0]["error"]


class ActOnly:
    """The bare Agent protocol: it learns its episode from reset and answers in act."""

    name = "act-only"

    def reset(self, info: Mapping[str, Any]) -> None:
        self.sample_id = info["sample_id"]

    def act(self, obs: Any) -> str:
        return _answer(ANSWERS[self.sample_id])


class ResetKeeper(AgentBase):
    """An AgentBase that keeps per-episode state in reset and inherits act_batch."""

    name = "reset-keeper"

    def reset(self, info: Mapping[str, Any]) -> None:
        super().reset(info)
        self.sample_id = info["sample_id"]

    def act(self, obs: Any) -> str:
        return _answer(ANSWERS[self.sample_id])


@pytest.mark.parametrize("agent", [ActOnly(), ResetKeeper()], ids=lambda a: a.name)
def test_an_act_only_agent_sees_its_own_episode_with_batch_size_above_one(tmp_path, agent):
    samples, backend = build_tiny_world()
    metrics = evaluate(agent, RunSpec(samples, backend), tmp_path, batch_size=2)
    assert metrics["accuracy"] == 1.0 and not plays_interleaved(agent)
    assert plays_interleaved(RAGWorkflowAgent()) and plays_interleaved(FixedLengthBatch(1))


def _run_lines(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_resume_replays_an_episode_whose_last_line_was_torn(tmp_path):
    samples, backend = build_tiny_world()
    clean = evaluate(RAGWorkflowAgent(), RunSpec(samples, backend), tmp_path / "clean")
    records = tmp_path / "run" / "episodes.jsonl"
    evaluate(RAGWorkflowAgent(), RunSpec(samples, backend), tmp_path / "run")
    first, second = _run_lines(records)
    records.write_bytes(first + second[: len(second) // 2] + b"\n")  # torn, and ended by a newline
    (tmp_path / "run" / "metrics.json").unlink()
    assert evaluate(RAGWorkflowAgent(), RunSpec(samples, backend), tmp_path / "run") == clean
    assert _run_lines(records) == [first, second]
    assert (tmp_path / "run" / "metrics.json").read_bytes() == (tmp_path / "clean" / "metrics.json").read_bytes()


@pytest.mark.parametrize("damage", ["blank", "duplicate"])
def test_resume_refuses_corruption_before_the_last_line(tmp_path, damage):
    samples, backend = build_tiny_world()
    evaluate(RAGWorkflowAgent(), RunSpec(samples[:1], backend), tmp_path)
    records = tmp_path / "episodes.jsonl"
    (line,) = _run_lines(records)
    records.write_bytes(line + b"\n" + line if damage == "blank" else line + line + line)
    with pytest.raises(RecordsError, match=r"episodes\.jsonl lines? [12]"):
        evaluate(RAGWorkflowAgent(), RunSpec(samples[:1], backend), tmp_path)


@pytest.fixture()
def recorded_cache(tmp_path):
    """A cache directory holding the tiny world's searches, recorded by the RAG agent."""
    samples, backend = build_tiny_world()
    recorder = CachedSearchBackend(backend, tmp_path / "cache", mode="record")
    evaluate(RAGWorkflowAgent(), RunSpec(samples, recorder), tmp_path / "recording")
    recorder.close()
    return tmp_path / "cache"


def test_resume_with_another_search_mode_is_refused(tmp_path, recorded_cache):
    samples, _ = build_tiny_world()
    replay = CachedSearchBackend.replay(recorded_cache, mode="replay")
    evaluate(RAGWorkflowAgent(), RunSpec(samples, replay), tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["search_mode"] == "replay" and len(manifest["cache_bundle_hash"]) == 64
    lenient = CachedSearchBackend.replay(recorded_cache, mode="replay_or_empty")
    with pytest.raises(RunMismatch, match=r"search_mode was \"replay\", now \"replay_or_empty\""):
        evaluate(RAGWorkflowAgent(), RunSpec(samples, lenient), tmp_path / "run")


def test_resume_with_another_cache_directory_is_refused(tmp_path, recorded_cache):
    samples, _ = build_tiny_world()
    evaluate(RAGWorkflowAgent(), RunSpec(samples, CachedSearchBackend.replay(recorded_cache)), tmp_path / "run")
    samples, backend = build_tiny_world()
    smaller = CachedSearchBackend(backend, tmp_path / "other", mode="record")  # image searches only
    evaluate(ScriptedAgent(["<reason>r</reason><search><img></search>", _answer("x")]), RunSpec(samples, smaller),
             tmp_path / "recording-2")
    smaller.close()
    with pytest.raises(RunMismatch, match=r"cache_bundle_hash was \"[0-9a-f]{64}\", now \"[0-9a-f]{64}\""):
        evaluate(RAGWorkflowAgent(), RunSpec(samples, CachedSearchBackend.replay(tmp_path / "other")), tmp_path / "run")


class ClosingSpec(RunSpec):
    """Counts the envs it makes and the ones closed."""

    made: list[Any]
    closed: list[Any]

    def make_env(self):  # type: ignore[override]
        env = super().make_env()
        close = env.close

        def counted_close() -> None:
            self.closed.append(env)
            close()

        env.close = counted_close  # type: ignore[method-assign]
        self.made.append(env)
        return env


def _closing_spec() -> ClosingSpec:
    samples, backend = build_tiny_world()
    spec = ClosingSpec(samples, backend)
    spec.made, spec.closed = [], []
    return spec


def test_evaluate_closes_its_envs(tmp_path):
    spec = _closing_spec()
    evaluate(RAGWorkflowAgent(), spec, tmp_path / "a", batch_size=2)
    assert len(spec.made) == 2 and spec.closed == spec.made
    evaluate(RAGWorkflowAgent(), spec, tmp_path / "b")  # the shared search backend still works after closing
    assert len(spec.closed) == 3


def test_evaluate_closes_its_envs_when_it_fails(tmp_path):
    spec = _closing_spec()
    evaluate(RAGWorkflowAgent(), spec, tmp_path)
    spec.seed = 1
    with pytest.raises(RunMismatch, match="seed was 0, now 1"):
        evaluate(RAGWorkflowAgent(), spec, tmp_path)
    assert spec.closed == spec.made and len(spec.made) == 2


def test_closing_the_envs_leaves_the_callers_search_backend_open(tmp_path, recorded_cache):
    samples, _ = build_tiny_world()
    replay = CachedSearchBackend.replay(recorded_cache)
    first = evaluate(RAGWorkflowAgent(), RunSpec(samples, replay), tmp_path / "a", batch_size=2)
    assert evaluate(RAGWorkflowAgent(), RunSpec(samples, replay), tmp_path / "b") == first  # same backend again
    replay.close()


def test_resume_with_other_grammar_rules_is_refused(tmp_path):
    samples, backend = build_tiny_world()
    evaluate(RAGWorkflowAgent(), RunSpec(samples, backend), tmp_path)
    with pytest.raises(RunMismatch, match=r"env\.rules was \"mmsearch_r1\", now \"lenient\""):
        evaluate(RAGWorkflowAgent(), RunSpec(samples, backend, env_kwargs={"rules": "lenient"}), tmp_path)


def test_an_act_batch_that_returns_a_string_instead_of_a_list_is_an_error(tmp_path):
    samples, backend = build_tiny_world()

    class OneString(FixedLengthBatch):
        def act_batch(self, observations, infos):  # type: ignore[override]
            return _answer("blue")

    metrics = evaluate(OneString(0), RunSpec(samples, backend), tmp_path, batch_size=2)
    assert metrics["episodes"] == 2 and metrics["agent_errors"] == 2
    assert "act_batch returned a str, not a list for 2 episode(s)" in RecordsFile(tmp_path / "episodes.jsonl").records[0]["error"]


def test_records_parse_turns_with_the_envs_rule_set(tmp_path):
    samples, backend = build_tiny_world()
    spaced = "<reason>r</reason><search> <img> </search>"  # an image search for the lenient rules only
    for rules, kind in (("lenient", "image_search"), ("mmsearch_r1", "invalid")):
        evaluate(ScriptedAgent([spaced, _answer("x")]), RunSpec(samples, backend, env_kwargs={"rules": rules}),
                 tmp_path / rules)
        record = RecordsFile(tmp_path / rules / "episodes.jsonl").records[0]
        assert record["parsed"][0]["kind"] == kind and len(record["searches_made"]) == (kind == "image_search")



def test_a_combined_search_records_both_sides_modes_and_the_replayed_cache(tmp_path, recorded_cache):
    # Regression: the manifest said search_mode "live" for images replayed from a bundle + live text.
    from mmsearch_gym.benchmarks.runner import cache_identity, search_mode
    from mmsearch_gym.search import CombinedSearch

    samples, live = build_tiny_world()
    replay = CachedSearchBackend.replay(recorded_cache)
    evaluate(RAGWorkflowAgent(), RunSpec(samples, CombinedSearch(replay, live)), tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["search_mode"] == "image=replay;text=live"
    assert manifest["cache_bundle_hash"] == cache_identity(replay) and len(manifest["cache_bundle_hash"]) == 64
    assert search_mode(CombinedSearch(replay, replay)) == "replay"
    assert cache_identity(CombinedSearch(replay, replay)) == cache_identity(replay)
    assert search_mode(CombinedSearch(live, live)) == "live" and cache_identity(CombinedSearch(live, live)) is None
