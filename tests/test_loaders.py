"""Benchmark loaders read small files written here in each benchmark's released schema."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import mmsearch_gym.data.loaders as loaders  # noqa: E402  (registers the loaders)
from mmsearch_gym.data.loaders import LoaderError  # noqa: E402
from mmsearch_gym.data.suites import LOADERS  # noqa: E402
from mmsearch_gym.search import StaticSearchBackend  # noqa: E402

TEMPLATE = ("<image>\nAnswer the user's question based on the provided image. Examine the image "
            "carefully and identify any recognizable entities.\nIf you cannot, search.\n\n"
            "Question: {question}\n")


def png(color: tuple[int, int, int], size: int = 8, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format=fmt)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------ FVQA

PROMPT = pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))
IMAGES = pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
REWARD = pa.struct([("candidate_answers", pa.string()), ("ground_truth", pa.string()), ("style", pa.string())])


def fvqa_rows() -> list[dict[str, Any]]:
    return [
        {"data_id": "fvqa_0", "data_source": "fvqa_test", "category": "search_required",
         "prompt": [{"role": "user", "content": TEMPLATE.format(question="Who designed this tower?")}],
         "images": [{"bytes": png((255, 0, 0)), "path": "a.png"}],
         "reward_model": {"ground_truth": "Gustave Eiffel", "candidate_answers": json.dumps(["Eiffel", "G. Eiffel"]),
                          "style": "model"},
         "image_urls": ["https://example.org/a.png"]},
        {"data_id": "fvqa_1", "data_source": "fvqa_test", "category": "search_free",
         "prompt": [{"role": "system", "content": "You are helpful."},
                    {"role": "user", "content": "<image>What colour is this?"}],
         "images": [{"bytes": png((0, 255, 0)), "path": None}],
         "reward_model": {"ground_truth": "green", "candidate_answers": "[]", "style": "model"},
         "image_urls": None},
        {"data_id": "fvqa_2", "data_source": "fvqa_test", "category": None,
         "prompt": [{"role": "user", "content": "<image>\nQuestion: In which year was it built?"}],
         "images": [{"bytes": png((0, 0, 255)), "path": None}],
         "reward_model": {"ground_truth": "1889", "candidate_answers": json.dumps(["1889", "in 1889"]),
                          "style": "model"},
         "image_urls": []},
    ]


def write_fvqa(path: Path, rows: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> Path:
    fields = [("data_source", pa.string()), ("prompt", PROMPT), ("images", IMAGES), ("reward_model", REWARD),
              ("image_urls", pa.list_(pa.string())), ("data_id", pa.string()), ("category", pa.string())]
    schema = pa.schema([f for f in fields if f[0] not in drop])
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k not in drop} for r in rows], schema=schema)
    pq.write_table(table, path)
    return path


def test_fvqa_reads_released_schema(tmp_path: Path) -> None:
    path = write_fvqa(tmp_path / "fvqa_test.parquet", fvqa_rows())
    samples = loaders.load("fvqa", path)
    assert [s.id for s in samples] == ["fvqa_0", "fvqa_1", "fvqa_2"]
    first, second, third = samples
    assert first.question == "Who designed this tower?"
    assert first.answers == ("Gustave Eiffel",)
    assert first.candidate_answers == ("Eiffel", "G. Eiffel")
    assert first.category == "search_required" and first.source == "fvqa"
    assert first.image_url == "https://example.org/a.png"
    assert first.meta["prompt"][0]["content"].startswith("<image>")
    assert first.meta["data_source"] == "fvqa_test" and first.meta["row"] == 0
    assert isinstance(first.image, bytes)  # kept encoded, decoded on use
    assert first.rgb()[0, 0].tolist() == [255, 0, 0]
    assert second.question == "What colour is this?" and second.candidate_answers == ()
    assert second.category == "search_free" and second.image_url is None
    assert third.question == "In which year was it built?"
    assert third.candidate_answers == ("in 1889",)  # the gold answer is not repeated
    assert third.category is None and third.image_url is None


def test_fvqa_without_data_id_gets_stable_ids_and_streams(tmp_path: Path) -> None:
    rows = fvqa_rows()
    rows[2]["reward_model"] = {**rows[2]["reward_model"], "candidate_answers": "not json"}
    path = write_fvqa(tmp_path / "train.parquet", rows, drop=("data_id",))
    stream = loaders.iter_samples("fvqa", path, batch_size=1)
    assert next(stream).id == "fvqa:train.parquet:0"  # rows before the bad one stream out
    assert next(stream).id == "fvqa:train.parquet:1"
    with pytest.raises(LoaderError) as caught:
        next(stream)
    message = str(caught.value)
    assert "train.parquet" in message and "row 2" in message
    assert "reward_model.candidate_answers" in message and "not json" in message
    assert caught.value.row == 2 and caught.value.column == "reward_model.candidate_answers"


def test_fvqa_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = write_fvqa(tmp_path / "broken.parquet", fvqa_rows(), drop=("reward_model",))
    with pytest.raises(LoaderError, match=r"broken\.parquet.*missing column 'reward_model'"):
        loaders.load("fvqa", path)


def test_fvqa_bad_category_and_empty_images(tmp_path: Path) -> None:
    rows = fvqa_rows()
    rows[1]["category"] = "sometimes"
    with pytest.raises(LoaderError, match=r"row 1.*column 'category'.*sometimes"):
        loaders.load("fvqa", write_fvqa(tmp_path / "a.parquet", rows))
    rows = fvqa_rows()
    rows[0]["images"] = []
    with pytest.raises(LoaderError, match=r"row 0.*column 'images'"):
        loaders.load("fvqa", write_fvqa(tmp_path / "b.parquet", rows))
    rows = fvqa_rows()
    rows[0]["images"] = [{"bytes": b"definitely not an image", "path": None}]
    with pytest.raises(LoaderError, match=r"row 0.*'images\[0\]\.bytes'.*not an encoded image"):
        loaders.load("fvqa", write_fvqa(tmp_path / "c.parquet", rows))


def test_fvqa_duplicate_ids_name_both_rows(tmp_path: Path) -> None:
    rows = fvqa_rows()
    rows[2]["data_id"] = "fvqa_0"
    with pytest.raises(LoaderError, match=r"duplicate sample id 'fvqa_0'.*row 0.*row 2"):
        loaders.load("fvqa", write_fvqa(tmp_path / "dup.parquet", rows))


def test_unknown_loader_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown dataset loader 'nope'.*fvqa.*infoseek.*livevqa.*mmsearch"):
        loaders.load("nope", tmp_path / "x.parquet")
    with pytest.raises(FileNotFoundError, match=r"fvqa loader: file not found: .*missing\.parquet"):
        loaders.load("fvqa", tmp_path / "missing.parquet")


def test_loaders_registered_and_env_runs_on_fvqa(tmp_path: Path) -> None:
    assert {"fvqa", "infoseek", "mmsearch", "simplevqa", "livevqa"} <= set(LOADERS)
    path = write_fvqa(tmp_path / "fvqa_test.parquet", fvqa_rows())
    env = gym.make("mmsearch_gym:ImageSearchVQA-v0", dataset=("fvqa", str(path)), search=StaticSearchBackend())
    try:
        observation, _ = env.reset(seed=0, options={"sample_id": "fvqa_2"})
        assert observation["images"][0].shape == (8, 8, 3)
        text = "".join(part.get("text", "") for part in observation["messages"][0]["content"])
        assert "In which year was it built?" in text
        _, reward, terminated, _, info = env.step("<reason>Known.</reason><answer>1889</answer>")
        assert terminated and info["score"] == 1.0 and float(reward) > 0
    finally:
        env.close()
    with pytest.raises(ValueError, match="unknown dataset loader"):
        gym.make("mmsearch_gym:ImageSearchVQA-v0", dataset=("nope", str(path)), search=StaticSearchBackend())


# -------------------------------------------------------------------------------------- InfoSeek


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_infoseek_jsonl_with_image_folder(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "oven_01.jpg").write_bytes(png((10, 10, 10), fmt="JPEG"))
    (images / "oven_02.JPEG").write_bytes(png((20, 20, 20), fmt="JPEG"))
    (images / "oven_03.png").write_bytes(png((30, 30, 30)))
    path = write_jsonl(tmp_path / "infoseek_val.jsonl", [
        {"data_id": "infoseek_val_00000000", "image_id": "oven_01", "question": "Which country is this lake in?",
         "answer": ["Norway"], "answer_eng": ["Norway", "Kingdom of Norway"], "data_split": "val_unseen_question"},
        {"data_id": "infoseek_val_00000001", "image_id": "oven_02", "question": "Who built this?",
         "answer": "Brunel", "answer_eng": ["Isambard Kingdom Brunel"], "data_split": "val_unseen_entity"},
        {"data_id": "infoseek_val_00000002", "image_id": "oven_03", "question": "How tall is it (m)?",
         "answer": [{"wikidata": 324, "range": [300, 350]}], "answer_eng": ["324"], "data_split": "val_unseen_entity"},
    ])
    samples = loaders.load("infoseek", path)  # image_dir defaults to ./images next to the file
    assert [s.id for s in samples] == ["infoseek_val_00000000", "infoseek_val_00000001", "infoseek_val_00000002"]
    assert samples[0].answers == ("Norway",) and samples[0].candidate_answers == ("Kingdom of Norway",)
    assert samples[0].meta["data_split"] == "val_unseen_question" and samples[0].meta["image_id"] == "oven_01"
    assert Path(str(samples[1].image)).name == "oven_02.JPEG" and samples[1].answers == ("Brunel",)
    assert samples[2].answers == ("324",) and samples[2].meta["answer_ranges"] == [[300, 350]]
    assert samples[2].rgb().shape == (8, 8, 3)


def test_infoseek_missing_image_and_column(tmp_path: Path) -> None:
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "oven_01.jpg").write_bytes(png((10, 10, 10), fmt="JPEG"))
    rows = [{"data_id": "a", "image_id": "oven_01", "question": "q?", "answer": ["x"]},
            {"data_id": "b", "image_id": "oven_99", "question": "q?", "answer": ["y"]}]
    path = write_jsonl(tmp_path / "val.jsonl", rows)
    with pytest.raises(LoaderError, match=r"val\.jsonl: row 1 \(line 2\), column 'image_id': no image file.*oven_99"):
        loaders.load("infoseek", path, image_dir=images)
    kept = loaders.load("infoseek", path, image_dir=images, skip_missing_images=True)
    assert [s.id for s in kept] == ["a"]
    path = write_jsonl(tmp_path / "val2.jsonl", [{"data_id": "c", "image_id": "oven_01", "answer": ["x"]}])
    with pytest.raises(LoaderError, match=r"val2\.jsonl: row 0 \(line 1\): missing column 'question'"):
        loaders.load("infoseek", path, image_dir=images)
    bad = tmp_path / "val3.jsonl"
    bad.write_text('{"data_id": "d"\n', encoding="utf-8")
    with pytest.raises(LoaderError, match=r"val3\.jsonl: row 0 \(line 1\): not valid JSON"):
        loaders.load("infoseek", bad, image_dir=images)


# -------------------------------------------------------------------------------------- MMSearch


def test_mmsearch_parquet_keeps_image_queries(tmp_path: Path) -> None:
    schema = pa.schema([
        ("sample_id", pa.int64()), ("query", pa.string()),
        ("query_image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ("gt_answer", pa.string()), ("alternative_gt_answers", pa.list_(pa.string())),
        ("area", pa.string()), ("subfield", pa.string()), ("website_screenshot", pa.binary()),
    ])
    rows = [
        {"sample_id": 0, "query": "Which team won the match shown?", "query_image": {"bytes": png((1, 2, 3)),
         "path": "q0.png"}, "gt_answer": "Arsenal", "alternative_gt_answers": ["Arsenal FC"], "area": "news",
         "subfield": "sports", "website_screenshot": b"x" * 100},
        {"sample_id": 1, "query": "A text-only query?", "query_image": None, "gt_answer": "x",
         "alternative_gt_answers": [], "area": "knowledge", "subfield": "general", "website_screenshot": None},
        {"sample_id": 2, "query": "When was this released?", "query_image": {"bytes": png((4, 5, 6)), "path": None},
         "gt_answer": "2024", "alternative_gt_answers": None, "area": "news", "subfield": "tech",
         "website_screenshot": None},
    ]
    folder = tmp_path / "MMSearch" / "end2end"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "end2end-00000.parquet")
    samples = loaders.load("mmsearch", tmp_path / "MMSearch")  # a dataset snapshot folder
    assert [s.id for s in samples] == ["0", "2"]
    assert samples[0].question == "Which team won the match shown?"
    assert samples[0].answers == ("Arsenal",) and samples[0].candidate_answers == ("Arsenal FC",)
    assert samples[0].meta["area"] == "news" and samples[0].meta["subfield"] == "sports"
    assert "website_screenshot" not in samples[0].meta
    assert samples[1].rgb()[0, 0].tolist() == [4, 5, 6]

    broken = tmp_path / "broken.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema).drop_columns(["gt_answer"]), broken)
    with pytest.raises(LoaderError, match=r"broken\.parquet: missing column 'gt_answer'"):
        loaders.load("mmsearch", broken)


# ------------------------------------------------------------------------------------- SimpleVQA


def test_simplevqa_base64_and_paths(tmp_path: Path) -> None:
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "p.png").write_bytes(png((9, 9, 9)))
    rows = [
        {"data_id": 1, "image": base64.b64encode(png((200, 0, 0))).decode(), "question": "What is shown?",
         "answer": "a cat", "language": "EN", "source": "web", "original_category": "animals"},
        {"data_id": 2, "image": "data:image/png;base64," + base64.b64encode(png((0, 200, 0))).decode(),
         "question": "这是哪里？", "answer": ["北京", "Beijing"], "language": "CN"},
        {"data_id": 3, "image": "pics/p.png", "question": "Colour?", "answer": "grey"},
    ]
    samples = loaders.load("simplevqa", write_jsonl(tmp_path / "simplevqa.jsonl", rows))
    assert [s.id for s in samples] == ["1", "2", "3"]
    assert isinstance(samples[0].image, bytes) and samples[0].rgb()[0, 0].tolist() == [200, 0, 0]
    assert samples[0].meta["dataset_source"] == "web" and samples[0].meta["language"] == "EN"
    assert samples[0].source == "simplevqa"
    assert samples[1].answers == ("北京", "Beijing") and samples[1].rgb()[0, 0].tolist() == [0, 200, 0]
    assert Path(str(samples[2].image)).name == "p.png"

    table_rows = [{k: r[k] for k in ("data_id", "image", "question")} | {"answer": "a cat"} for r in rows[:1]]
    parquet = tmp_path / "simplevqa.parquet"
    pq.write_table(pa.Table.from_pylist(table_rows), parquet)
    assert loaders.load("simplevqa", parquet)[0].answers == ("a cat",)


def test_simplevqa_malformed_images(tmp_path: Path) -> None:
    url = write_jsonl(tmp_path / "url.jsonl", [
        {"data_id": 1, "image": "https://example.org/x.jpg", "question": "q", "answer": "a"}])
    with pytest.raises(LoaderError, match=r"url\.jsonl: row 0 \(line 1\), column 'image': is a URL"):
        loaders.load("simplevqa", url)
    garbage = write_jsonl(tmp_path / "b64.jsonl", [
        {"data_id": 1, "image": "data:image/png;base64,!!!notbase64!!!", "question": "q", "answer": "a"}])
    with pytest.raises(LoaderError, match=r"b64\.jsonl: row 0 \(line 1\), column 'image': not valid base64"):
        loaders.load("simplevqa", garbage)
    missing = write_jsonl(tmp_path / "missing.jsonl", [
        {"data_id": 1, "image": "nowhere/p.png", "question": "q", "answer": "a"}])
    with pytest.raises(LoaderError, match=r"column 'image': image file not found.*nowhere/p\.png"):
        loaders.load("simplevqa", missing)


# --------------------------------------------------------------------------------------- LiveVQA


def test_livevqa_flat_and_nested_json(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "n1.jpg").write_bytes(png((5, 5, 5), fmt="JPEG"))
    flat = tmp_path / "livevqa.json"
    flat.write_text(json.dumps([
        {"id": "lv-1", "img_path": "img/n1.jpg", "question": "Who is speaking?", "answer": "Jane Doe",
         "Ground_Truth_List": ["Jane Doe", "J. Doe"], "topic": "politics", "image_url": "https://news/x.jpg"},
    ]), encoding="utf-8")
    [sample] = loaders.load("livevqa", flat)
    assert sample.id == "lv-1" and sample.answers == ("Jane Doe",) and sample.candidate_answers == ("J. Doe",)
    assert sample.meta["topic"] == "politics" and sample.image_url == "https://news/x.jpg"
    assert sample.rgb().shape == (8, 8, 3)

    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"data": [
        {"id": "news-7", "image": "img/n1.jpg", "topic": "sport",
         "level1_qas": [{"question": "Which sport?", "answer": "tennis"}],
         "level2_qas": [{"question": "Who won?", "answer": ["Ana"], "id": "custom"},
                        {"question": "Where?", "answer": "Paris"}]},
    ]}), encoding="utf-8")
    samples = loaders.load("livevqa", nested)
    assert [s.id for s in samples] == ["news-7#level1_qas-0", "custom", "news-7#level2_qas-1"]
    assert [s.question for s in samples] == ["Which sport?", "Who won?", "Where?"]
    assert all(s.meta["topic"] == "sport" for s in samples)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "n", "image": "img/n1.jpg", "level1_qas": [{"question": "q"}]}]),
                   encoding="utf-8")
    with pytest.raises(LoaderError, match=r"bad\.json: row 0: missing column 'level1_qas\[0\]\.answer'"):
        loaders.load("livevqa", bad)


def test_limit_and_rgb_decoding_stays_lazy(tmp_path: Path) -> None:
    path = write_fvqa(tmp_path / "fvqa.parquet", fvqa_rows())
    samples = loaders.load("fvqa", path, limit=2)
    assert len(samples) == 2 and all(isinstance(s.image, bytes) for s in samples)
    assert isinstance(samples[0].rgb(), np.ndarray)


def test_fvqa_question_extraction(tmp_path: Path) -> None:
    from mmsearch_gym.data.loaders.fvqa import question_from_text

    assert question_from_text(TEMPLATE.format(question="Who is this?")) == "Who is this?"
    assert question_from_text("<image>\nWhat is it?") == "What is it?"
    assert question_from_text("Intro.\nQuestion: first?\n\nQuestion: second line\n\nTrailing notes.") == "second line"
    rows = fvqa_rows()[:1]
    rows[0]["extra_info"] = {"index": 0, "question": "Who designed it?"}  # preferred over the prompt
    path = tmp_path / "extra.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    [sample] = loaders.load("fvqa", path)
    assert sample.question == "Who designed it?" and sample.meta["extra_info"]["index"] == 0
