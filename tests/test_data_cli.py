"""`mmsearch-gym data convert` and `data synth` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("pyarrow")

import mmsearch_gym  # noqa: E402,F401  (registers the environment)
import mmsearch_gym.data.loaders as loaders  # noqa: E402
from mmsearch_gym.agents.turns import answer_turn  # noqa: E402
from mmsearch_gym.benchmarks.runner import dataset_hash  # noqa: E402
from mmsearch_gym.cache import verify_bundle  # noqa: E402
from mmsearch_gym.cli import app  # noqa: E402
from mmsearch_gym.data.suite_io import read_manifest, read_suite  # noqa: E402
from mmsearch_gym.search import StaticSearchBackend  # noqa: E402
from test_loaders import fvqa_rows, write_fvqa  # noqa: E402

runner = CliRunner()


def invoke(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


def test_convert_fvqa_parquet_to_a_suite(tmp_path: Path) -> None:
    parquet = write_fvqa(tmp_path / "fvqa_test.parquet", fvqa_rows())
    out = tmp_path / "suite"
    code, output = invoke("data", "convert", f"fvqa:{parquet}", out)
    assert code == 0, output
    assert "wrote 3 samples" in output and read_manifest(out)["sha256"] in output

    original = loaders.load("fvqa", parquet)
    converted = read_suite(out)  # verifies the suite hash
    assert [s.id for s in converted] == ["fvqa_0", "fvqa_1", "fvqa_2"]
    for before, after in zip(original, converted, strict=True):
        for field in ("id", "question", "answers", "candidate_answers", "category", "source"):
            assert getattr(after, field) == getattr(before, field), field
        assert dict(after.meta) == json.loads(json.dumps(dict(before.meta)))
        assert np.array_equal(after.rgb(), before.rgb())
    assert converted[0].image_url == "https://example.org/a.png"
    assert (out / "images" / "fvqa_0.png").read_bytes() == fvqa_rows()[0]["images"][0]["bytes"]  # PNG kept

    env = gym.make("ImageSearchVQA-v0", dataset=str(out), search=StaticSearchBackend())
    try:
        obs, info = env.reset(options={"sample_id": "fvqa_0"})
        assert info["sample_id"] == "fvqa_0" and obs["images"][0].shape == (8, 8, 3)
        _, reward, terminated, _, info = env.step(answer_turn("It is the designer.", "Gustave Eiffel"))
        assert terminated and info["score"] == 1.0 and reward > 0
    finally:
        env.close()

    # an existing suite is kept unless --overwrite
    code, output = invoke("data", "convert", f"fvqa:{parquet}", out)
    assert code != 0 and "already holds a suite" in output
    code, output = invoke("data", "convert", f"fvqa:{parquet}", out, "--overwrite")
    assert code == 0, output


def test_convert_errors_are_clear(tmp_path: Path) -> None:
    code, output = invoke("data", "convert", f"nosuchloader:{tmp_path / 'x.parquet'}", tmp_path / "out")
    assert code != 0 and "unknown dataset" in output and "fvqa" in output  # names the known loaders
    assert not (tmp_path / "out").exists()
    code, output = invoke("data", "convert", f"fvqa:{tmp_path / 'missing.parquet'}", tmp_path / "out")
    assert code != 0 and "missing.parquet" in output
    broken = write_fvqa(tmp_path / "broken.parquet", fvqa_rows(), drop=("reward_model",))
    code, output = invoke("data", "convert", f"fvqa:{broken}", tmp_path / "out")
    assert code != 0 and "reward_model" in output


def test_synth_writes_splits_and_a_cache_the_oracle_replays(tmp_path: Path) -> None:
    pytest.importorskip("bm25s")
    pytest.importorskip("imagehash")
    out = tmp_path / "tiny"
    code, output = invoke("data", "synth", out, "--n-test", 8, "--n-train", 8, "--n-entities-test", 4,
                          "--n-entities-train", 4)
    assert code == 0, output
    assert (out / "test" / "suite.json").is_file() and (out / "train" / "suite.json").is_file()
    assert (out / "cache.zip").is_file() and not (out / "corpus").exists()
    test, train = read_suite(out / "test"), read_suite(out / "train")
    assert len(test) == 8 and len(train) == 8
    assert not {s.meta["entity"] for s in test} & {s.meta["entity"] for s in train}
    assert read_manifest(out / "test")["sha256"] in output

    code, output = invoke("cache", "verify", out / "cache.zip")
    assert code == 0, output

    run = tmp_path / "run"
    code, output = invoke("eval", "--suite", out / "test", "--cache", out / "cache.zip", "--agents", "oracle",
                          "--out", run)
    assert code == 0, output
    metrics = json.loads((run / "oracle" / "metrics.json").read_text())
    assert metrics["accuracy"] == 1.0 and metrics["episodes"] == 8
    manifest = json.loads((run / "oracle" / "manifest.json").read_text())
    assert manifest["cache_bundle_hash"] == verify_bundle(out / "cache.zip").sha256
    assert manifest["suite_hash"] == dataset_hash(test)  # the run pins the samples it played
