"""`mmsearch-gym eval` failures a user can cause: each is one line naming the bad value and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import build_tiny_world
from mmsearch_gym.cli import app
from mmsearch_gym.data.suite_io import write_suite

runner = CliRunner()


def _eval(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["eval", *args], terminal_width=100)
    return result.exit_code, result.output


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def test_an_unknown_env_key_names_the_valid_keys_not_the_dataset(tmp_path):
    code, output = _eval("--limit", "2", "--env", "foo=1", "--out", str(tmp_path))
    line = _error_line(output)
    assert code == 2 and "unknown --env key 'foo'" in line and "max_turns" in line and "top_k" in line
    assert "VQASample" not in output and len(output) < 400


@pytest.mark.parametrize(("pair", "message"), [
    ("dataset=x", "use --suite"), ("cache_path=x", "use --cache"), ("max_turns", "expects KEY=VALUE"),
    ("max_turns=0", "max_turns must be"),
])
def test_env_settings_are_checked_before_any_agent_runs(tmp_path, pair, message):
    code, output = _eval("--limit", "2", "--env", pair, "--out", str(tmp_path))
    assert code == 2 and message in _error_line(output)
    assert not (tmp_path / "no-search").exists()


@pytest.fixture()
def suite_without_cache(tmp_path) -> Path:
    samples, _ = build_tiny_world()
    write_suite(samples, tmp_path / "suite", name="tiny")
    return tmp_path / "suite"


@pytest.mark.parametrize("mode", ["replay", "replay_or_empty"])
def test_replay_without_a_cache_names_the_cli_flag(tmp_path, suite_without_cache, mode):
    code, output = _eval("--suite", str(suite_without_cache), "--search", mode, "--out", str(tmp_path / "out"))
    line = _error_line(output)
    assert code == 2 and f"--search {mode} needs --cache" in line and "cache_path=" not in output


def test_an_unknown_search_mode_lists_the_cli_modes(tmp_path):
    code, output = _eval("--limit", "2", "--search", "record", "--out", str(tmp_path))
    assert code == 2 and "choose from replay, replay_or_empty, local" in _error_line(output)


def test_resume_problems_are_one_line_errors(tmp_path):
    out = tmp_path / "out"
    code, output = _eval("--limit", "2", "--agents", "no-search", "--out", str(out))
    assert code == 0, output
    code, output = _eval("--limit", "2", "--agents", "no-search", "--search", "replay_or_empty", "--out", str(out))
    assert code == 2 and 'search_mode was "replay", now "replay_or_empty"' in _error_line(output)
    records = out / "no-search" / "episodes.jsonl"
    first, second = records.read_bytes().splitlines(keepends=True)
    records.write_bytes(first + b"\n" + second)
    code, output = _eval("--limit", "2", "--agents", "no-search", "--out", str(out))
    assert code == 2 and "episodes.jsonl line 2 is blank" in _error_line(output) and "Traceback" not in output


def test_an_out_path_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "out").write_text("not a directory")
    code, output = _eval("--limit", "2", "--agents", "no-search", "--out", str(tmp_path / "out"))
    assert code == 2 and "cannot use" in _error_line(output) and "Traceback" not in output


def test_a_cache_directory_is_pinned_by_the_hash_its_bundle_would_carry(tmp_path, suite_without_cache):
    import json

    from mmsearch_gym.agents.baselines import RAGWorkflowAgent
    from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
    from mmsearch_gym.cache import CachedSearchBackend
    from mmsearch_gym.cache.bundle import export_bundle

    samples, backend = build_tiny_world()
    recorder = CachedSearchBackend(backend, tmp_path / "cache", mode="record")
    evaluate(RAGWorkflowAgent(), RunSpec(samples, recorder), tmp_path / "recording")
    recorder.close()
    bundle = export_bundle(tmp_path / "cache", tmp_path / "cache.zip")
    for cache in ("cache", "cache.zip"):
        code, output = _eval("--suite", str(suite_without_cache), "--cache", str(tmp_path / cache), "--agents", "rag",
                             "--out", str(tmp_path / f"out-{cache}"))
        assert code == 0, output
        manifest = json.loads((tmp_path / f"out-{cache}" / "rag" / "manifest.json").read_text())
        assert manifest["cache_bundle_hash"] == bundle.sha256
