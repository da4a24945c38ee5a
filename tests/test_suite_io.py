"""The on-disk suite format: round trip, hashing and every reading error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suite_io import read_manifest, read_suite, suite_hash, write_suite
from mmsearch_gym.data.synth import generate_questions, generate_world


@pytest.fixture(scope="module")
def samples():
    world = generate_world(3, 12, n_test_entities=4)
    return generate_questions(world, 30, 1, "train")


@pytest.fixture
def suite(tmp_path, samples):
    path = tmp_path / "suite"
    write_suite(samples, path, name="tiny")
    return path


def test_round_trip(tmp_path, samples):
    digest = write_suite(samples, tmp_path / "s", name="tiny", version="2", metadata={"seed": 3})
    manifest = read_manifest(tmp_path / "s")
    assert manifest["name"] == "tiny" and manifest["version"] == "2" and manifest["count"] == 30
    assert manifest["sha256"] == digest == suite_hash(tmp_path / "s")
    assert manifest["metadata"] == {"seed": 3}
    loaded = read_suite(tmp_path / "s")
    assert len(loaded) == len(samples)
    for original, back in zip(samples, loaded, strict=True):
        assert isinstance(back.image, str) and Path(back.image).name == f"{original.id}.png"
        assert Path(back.image).read_bytes() == original.image  # PNG bytes kept byte for byte
        assert np.array_equal(back.rgb(), original.rgb())
        assert (back.id, back.question, back.answers, back.candidate_answers, back.category, back.source) == \
            (original.id, original.question, original.answers, original.candidate_answers,
             original.category, original.source)
        assert back.meta == json.loads(json.dumps(dict(original.meta)))
    # writing the same samples again gives the same bytes and hash
    assert write_suite(loaded, tmp_path / "again", name="tiny", version="2", metadata={"seed": 3}) == digest


def test_non_png_images_are_encoded(tmp_path):
    pixels = np.zeros((5, 7, 3), np.uint8)
    pixels[:, :3] = (200, 10, 10)
    write_suite([VQASample("a", pixels, "q?", ("x",))], tmp_path / "s")
    (back,) = read_suite(tmp_path / "s")
    assert np.array_equal(back.rgb(), pixels)
    assert back.category is None and back.meta == {}


def test_write_errors(tmp_path, samples, suite):
    with pytest.raises(ValueError, match="already holds a suite"):
        write_suite(samples, suite)
    write_suite(samples[:5], suite, overwrite=True)
    assert len(read_suite(suite)) == 5 and len(list((suite / "images").glob("*.png"))) == 5
    pixels = np.zeros((2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="cannot be a file name"):
        write_suite([VQASample("a/b", pixels, "q", ("x",))], tmp_path / "bad")
    with pytest.raises(ValueError, match="duplicate sample id 'a'"):
        write_suite([VQASample("a", pixels, "q", ("x",))] * 2, tmp_path / "dup")
    with pytest.raises(ValueError, match="'m'.*JSON"):
        write_suite([VQASample("m", pixels, "q", ("x",), meta={"x": object()})], tmp_path / "meta")
    with pytest.raises(ValueError, match="empty"):
        write_suite([], tmp_path / "empty")


def test_missing_files(tmp_path, suite, samples):
    with pytest.raises(ValueError, match="suite directory not found"):
        read_suite(tmp_path / "nowhere")
    image = suite / "images" / f"{samples[7].id}.png"
    image.unlink()
    with pytest.raises(ValueError, match=f"image missing for sample '{samples[7].id}'"):
        read_suite(suite, verify=False)
    (suite / "samples.jsonl").unlink()
    with pytest.raises(ValueError, match="samples file missing"):
        read_suite(suite)
    (suite / "suite.json").unlink()
    with pytest.raises(ValueError, match="manifest missing"):
        read_suite(suite)


def test_malformed_line_names_file_and_line(suite):
    lines = (suite / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4][:-3]
    (suite / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"samples\.jsonl' line 5: malformed JSON"):
        read_suite(suite)
    lines[4] = json.dumps({"id": "x", "question": "q"})
    (suite / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 5: missing field\(s\) \['answers'"):
        read_suite(suite)


def test_hash_mismatch(suite, samples):
    image = suite / "images" / f"{samples[2].id}.png"
    original = image.read_bytes()
    image.write_bytes(original + b"\0")
    with pytest.raises(ValueError, match="suite hash mismatch"):
        read_suite(suite)
    assert len(read_suite(suite, verify=False)) == len(samples)
    image.write_bytes(original)
    text = (suite / "samples.jsonl").read_text(encoding="utf-8")
    (suite / "samples.jsonl").write_text(text.replace('"question":"', '"question":"Really? ', 1), encoding="utf-8")
    with pytest.raises(ValueError, match="suite hash mismatch"):
        read_suite(suite)


def test_count_and_manifest_checks(suite):
    manifest = json.loads((suite / "suite.json").read_text())
    manifest["count"] += 1
    (suite / "suite.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="says 31 samples"):
        read_suite(suite)
    (suite / "suite.json").write_text("{not json")
    with pytest.raises(ValueError, match="suite.json'.*malformed JSON"):
        read_suite(suite)
    (suite / "suite.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="is not a mmsearch-gym-suite manifest"):
        read_suite(suite)
