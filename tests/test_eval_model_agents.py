"""`mmsearch-gym eval --agent hf|openai|vllm`: model agents through the evaluation CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from mmsearch_gym.cli import app


def test_eval_with_a_local_transformers_checkpoint(tiny_qwen, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "eval", "--agent", "hf", "--model", str(tiny_qwen), "--device", "cpu", "--max-new-tokens", "12",
        "--limit", "3", "--search", "replay_or_empty", "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "hf" / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["error"] is None for r in records)
    metrics = json.loads((out / "hf" / "metrics.json").read_text())
    assert metrics["episodes"] == 3 and metrics["agent_errors"] == 0
    card = json.loads((out / "hf" / "manifest.json").read_text())["agent"]
    assert card["chat_template_sha256"] and card["weights"]
    assert (out / "summary.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--agent", "hf"], "--model"),
    (["--agent", "openai", "--model", "m"], "--base-url"),
    (["--agent", "gemini"], "gemini"),
])
def test_model_agent_options_are_checked(tmp_path, args, message):
    result = CliRunner().invoke(app, ["eval", "--limit", "1", "--out", str(tmp_path), *args])
    assert result.exit_code == 2 and message in result.output


def test_vllm_agent_is_import_safe_without_vllm():
    import mmsearch_gym.agents.vllm as module

    assert hasattr(module, "VLLMAgent")
