"""Evaluation runner: records, metrics, resumption after SIGKILL, byte-identical metrics, baselines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import build_tiny_world
from mmsearch_gym.agents.baselines import (
    NoSearchAgent,
    OracleAgent,
    RAGWorkflowAgent,
    ScriptedAgent,
    dominant_color_name,
    entity_from_title,
    extract_answer,
)
from mmsearch_gym.benchmarks.records import RecordsAppender, RecordsFile
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate

ROOT = Path(__file__).resolve().parents[1]


def test_oracle_is_perfect_and_no_search_never_searches(tmp_path):
    samples, backend = build_tiny_world()
    spec = RunSpec(samples, backend)
    oracle = evaluate(OracleAgent(samples), spec, tmp_path / "oracle")
    assert oracle["accuracy"] == 1.0 and oracle["format_rate"] == 1.0
    no_search = evaluate(NoSearchAgent(), spec, tmp_path / "no-search")
    assert no_search["search_ratio"] == 0.0
    assert no_search["by_category"]["search_required"]["accuracy"] == 0.0
    assert no_search["by_category"]["search_free"]["accuracy"] == 1.0  # reads the colour from pixels
    rag = evaluate(RAGWorkflowAgent(), spec, tmp_path / "rag")
    assert rag["search_ratio"] == 1.0 and rag["image_searches"] == 2 and rag["text_searches"] == 2


def test_records_hold_the_whole_trajectory(tmp_path):
    samples, backend = build_tiny_world()
    script = {"rbs-year": ["<reason>a</reason><search><img></search>",
                           "<reason>b</reason><text_search>Red Banner Society founded</text_search>",
                           "<reason>c</reason><answer>1887</answer>"],
              "colour-q": ["<reason>a</reason><answer>red</answer>"]}
    evaluate(ScriptedAgent(script), RunSpec(samples, backend), tmp_path)
    records = RecordsFile(tmp_path / "episodes.jsonl").ordered()
    first = records[0]
    assert first["actions"] == script["rbs-year"]
    assert [p["kind"] for p in first["parsed"]] == ["image_search", "text_search", "answer"]
    assert [s["kind"] for s in first["searches_made"]] == ["image", "text"]
    assert first["searches_made"][1]["query"] == "Red Banner Society founded"
    assert first["reward"] == pytest.approx(0.91) and first["answer"] == "1887"
    assert len(first["image_digests"]) == 3 and len(first["messages"]) == 6
    assert records[1]["score"] == 0.0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["agent"]["name"] == "scripted" and manifest["reward"]["search_penalty"] == 0.1
    assert len(manifest["suite_hash"]) == 64


def test_agent_failures_are_recorded_not_fatal(tmp_path):
    samples, backend = build_tiny_world()

    def flaky(obs, info):
        if info["sample_id"] == "rbs-year":
            raise ConnectionError("model server down")
        return "<reason>x</reason><answer>blue</answer>"

    metrics = evaluate(ScriptedAgent(flaky), RunSpec(samples, backend), tmp_path, batch_size=2)
    assert metrics["agent_errors"] == 1 and metrics["episodes"] == 2
    record = RecordsFile(tmp_path / "episodes.jsonl").records[0]
    assert record["error"] == "ConnectionError: model server down" and record["reward"] == 0.0


def test_batched_and_sequential_runs_agree(tmp_path):
    samples, backend = build_tiny_world()
    spec = RunSpec(samples, backend)
    evaluate(RAGWorkflowAgent(), spec, tmp_path / "a", batch_size=1)
    evaluate(RAGWorkflowAgent(), spec, tmp_path / "b", batch_size=2)
    assert (tmp_path / "a/metrics.json").read_bytes() == (tmp_path / "b/metrics.json").read_bytes()


def test_resume_refuses_a_different_run(tmp_path):
    samples, backend = build_tiny_world()
    evaluate(NoSearchAgent(), RunSpec(samples, backend), tmp_path)
    with pytest.raises(ValueError, match="different run"):
        evaluate(NoSearchAgent(), RunSpec(samples, backend, seed=1), tmp_path)


def test_torn_last_line_is_left_out_by_readers_and_cut_by_the_appender(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_bytes(b'{"index": 0, "x": 1}\n{"index": 1, "x"')
    records = RecordsFile(path)
    assert len(records) == 1 and records.torn is not None
    assert path.read_bytes() == b'{"index": 0, "x": 1}\n{"index": 1, "x"'  # reading never modifies the file
    assert len(RecordsAppender(path)) == 1 and path.read_bytes() == b'{"index": 0, "x": 1}\n'
    assert (tmp_path / "episodes.jsonl.torn").read_bytes() == b'{"index": 1, "x"\n'  # set aside, not lost


SLOW_RUN = r"""
import sys, time
sys.path.insert(0, "tests")
import numpy as np
from conftest import build_tiny_world
from mmsearch_gym.data import VQASample
from mmsearch_gym.agents.baselines import RAGWorkflowAgent
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
_, backend = build_tiny_world()
samples = [VQASample(f"s{i}", np.full((8, 8, 3), i, np.uint8), f"Question {i}?", (str(i),)) for i in range(40)]
class Slow(RAGWorkflowAgent):
    def act(self, obs):
        time.sleep(float(sys.argv[2]))
        return super().act(obs)
evaluate(Slow(), RunSpec(samples, backend), sys.argv[1])
"""


def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    subprocess.run([sys.executable, "-c", SLOW_RUN, str(clean), "0"], cwd=ROOT, check=True)
    process = subprocess.Popen([sys.executable, "-c", SLOW_RUN, str(killed), "0.02"], cwd=ROOT)
    records = killed / "episodes.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not records.exists() or records.read_bytes().count(b"\n") < 5):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = records.read_bytes().count(b"\n")
    assert 5 <= done_before < 40 and not (killed / "metrics.json").exists()
    subprocess.run([sys.executable, "-c", SLOW_RUN, str(killed), "0"], cwd=ROOT, check=True)
    lines = records.read_text().splitlines()
    assert len(lines) == 40 and len({json.loads(line)["index"] for line in lines}) == 40
    assert (killed / "metrics.json").read_bytes() == (clean / "metrics.json").read_bytes()


def test_baseline_helpers():
    import numpy as np
    red = np.zeros((10, 10, 3), np.uint8)
    red[:] = (210, 40, 35)
    assert dominant_color_name(red) == "red"
    assert entity_from_title("Velmora Guild - Encyclopedia") == "Velmora Guild"
    assert extract_answer("In which year was it founded?",
                          ["The Velmora Guild was founded in 1887 in Tarsk. It has 40 members."],
                          "Velmora Guild") == "1887"
    assert extract_answer("Who founded the organisation with this emblem?",
                          ["The Velmora Guild was founded by Ansel Corvin."], "Velmora Guild") == "Ansel Corvin"
    assert extract_answer("What is the name of the organisation shown?", [], "Velmora Guild") == "Velmora Guild"


class _BilledBackend:
    """A live backend that counts billable calls the way the SerpApi backends do."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.backend_id = inner.backend_id

    def image_search(self, image, top_k):
        self.calls += 1
        return self.inner.image_search(image, top_k)

    def text_search(self, query, top_k):
        self.calls += 1
        return self.inner.text_search(query, top_k)

    def usage(self):
        return {"billable_calls": {"serpapi/google": self.calls}, "estimated_cost_usd": self.calls * 0.015}


def test_metrics_report_billable_searches_of_live_backends(tmp_path):
    from mmsearch_gym.cache import CachedSearchBackend

    samples, backend = build_tiny_world()
    recorder = CachedSearchBackend(_BilledBackend(backend), tmp_path / "cache", "record")
    metrics = evaluate(RAGWorkflowAgent(), RunSpec(samples, recorder), tmp_path / "live")
    assert metrics["search_usage"]["billable_calls"] == {"serpapi/google": 4}
    assert metrics["search_usage"]["estimated_cost_usd"] == pytest.approx(0.06)
    replayed = evaluate(RAGWorkflowAgent(), RunSpec(samples, CachedSearchBackend.replay(tmp_path / "cache")),
                        tmp_path / "replay")
    assert "search_usage" not in replayed  # replays are free, and their metrics stay byte-identical
