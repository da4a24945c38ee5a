"""Damaged images in every loader and in suite directories: one-line errors naming sample and file.
Also the verl-layout parquet of MMSearch-R1's InfoSeek sub-2k, and FVQA's `data_id` in meta."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import mmsearch_gym.data.loaders as loaders  # noqa: E402  (registers the loaders)
from mmsearch_gym.data.loaders.common import LoaderError, RowContext, collect  # noqa: E402  (old import path)
from mmsearch_gym.data.suite_io import read_suite, write_suite  # noqa: E402
from mmsearch_gym.data.suites import LOADERS, resolve_dataset  # noqa: E402
from mmsearch_gym.data.sample import VQASample  # noqa: E402
from mmsearch_gym.imaging import ImageError  # noqa: E402


def png(color: tuple[int, int, int] = (10, 20, 30), size: int = 24, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(sum(color)).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated(fmt: str = "PNG") -> bytes:
    data = png(fmt=fmt)
    return data[: len(data) // 2]


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def assert_one_line(error: pytest.ExceptionInfo[BaseException], *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, (part, message)


# ------------------------------------------------------------------------------ verl-style parquet

VERL_SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
    ("images", pa.list_(pa.struct([("bytes", pa.binary())]))),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("candidate_answers", pa.list_(pa.string())), ("ground_truth", pa.string()),
                                ("style", pa.string())])),
    ("extra_info", pa.struct([("index", pa.int64()), ("split", pa.string())])),
    ("category", pa.string()),
    ("data_id", pa.int64()),
])


def verl_row(data_id: int, image: bytes, question: str, answer: str, aliases: list[str]) -> dict[str, Any]:
    return {"data_source": "infoseek", "ability": "vqa", "category": "search_required", "data_id": data_id,
            "prompt": [{"role": "user", "content": f"<image>\nAnswer the question.\n\nQuestion: {question}\n"}],
            "images": [{"bytes": image}],
            "reward_model": {"ground_truth": answer, "candidate_answers": aliases, "style": "model"},
            "extra_info": {"index": data_id, "split": "test"}}


def write_verl(path: Path, rows: list[dict[str, Any]]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=VERL_SCHEMA), path)
    return path


def test_infoseek_sub2k_verl_parquet_loads(tmp_path: Path) -> None:
    path = write_verl(tmp_path / "mmsearch_r1_infoseek_sub_2k.parquet", [
        verl_row(101, png((1, 2, 3)), "Which river flows through this city?", "Danube", ["Donau", "Danube"]),
        verl_row(102, png((4, 5, 6), fmt="JPEG"), "Who built this bridge?", "Isambard Brunel", []),
    ])
    samples = loaders.load("infoseek-sub2k", path)
    assert [s.id for s in samples] == ["101", "102"]
    first = samples[0]
    assert first.source == "infoseek-sub2k" and first.category == "search_required"
    assert first.question == "Which river flows through this city?"
    assert first.answers == ("Danube",) and first.candidate_answers == ("Donau",)
    assert first.meta["data_id"] == 101 and first.meta["data_source"] == "infoseek"
    assert first.meta["extra_info"] == {"index": 101, "split": "test"}
    assert first.rgb().shape == (24, 24, 3) and samples[1].rgb().shape == (24, 24, 3)
    # the same file through the CLI/env dataset spelling and through the fvqa loader
    assert [s.id for s in resolve_dataset(f"infoseek-sub2k:{path}")] == ["101", "102"]
    assert [s.source for s in loaders.load("fvqa", path)] == ["fvqa", "fvqa"]
    assert "infoseek-sub2k" in LOADERS


def test_fvqa_keeps_data_id_in_meta_for_cache_keys(tmp_path: Path) -> None:
    path = write_verl(tmp_path / "fvqa_test.parquet", [verl_row(7, png((9, 9, 9)), "What is it?", "A tower", [])])
    [sample] = loaders.load("fvqa", path)
    assert sample.id == "7" and sample.meta["data_id"] == 7
    by_data_id = {s.meta["data_id"]: s.rgb() for s in loaders.iter_samples("fvqa", path)}
    np.testing.assert_array_equal(by_data_id[7], np.asarray(Image.open(io.BytesIO(png((9, 9, 9))))))


# ------------------------------------------------------------------------------ damaged images


def test_fvqa_corrupt_and_bomb_images_name_sample_file_row_and_column(tmp_path: Path) -> None:
    path = write_verl(tmp_path / "fvqa_test.parquet", [
        verl_row(1, png(), "q1?", "a", []), verl_row(2, truncated(), "q2?", "b", []),
        verl_row(3, bomb_png(), "q3?", "c", []),
    ])
    good, broken, bomb = loaders.load("fvqa", path)  # lazy: loading succeeds, decoding fails
    assert good.rgb().shape == (24, 24, 3)
    with pytest.raises(ImageError) as caught:
        broken.rgb()
    assert_one_line(caught, "sample '2'", "fvqa_test.parquet: row 1, column 'images[0]'", "cannot decode image bytes")
    with pytest.raises(ImageError) as caught:
        bomb.rgb()
    assert_one_line(caught, "sample '3'", "fvqa_test.parquet: row 2, column 'images[0]'", "pixels")


def test_mmsearch_corrupt_image(tmp_path: Path) -> None:
    schema = pa.schema([("sample_id", pa.int64()), ("query", pa.string()),
                        ("query_image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("gt_answer", pa.string())])
    path = tmp_path / "end2end.parquet"
    pq.write_table(pa.Table.from_pylist([{"sample_id": 5, "query": "q?", "query_image": {"bytes": truncated("JPEG"),
                                          "path": None}, "gt_answer": "a"}], schema=schema), path)
    [sample] = loaders.load("mmsearch", path)
    with pytest.raises(ImageError) as caught:
        sample.rgb()
    assert_one_line(caught, "sample '5'", "end2end.parquet: row 0, column 'query_image'", "cannot decode")


def test_simplevqa_corrupt_base64_image(tmp_path: Path) -> None:
    path = tmp_path / "simplevqa.jsonl"
    path.write_text(json.dumps({"data_id": 9, "image": base64.b64encode(truncated()).decode(),
                                "question": "q?", "answer": "a"}) + "\n", encoding="utf-8")
    [sample] = loaders.load("simplevqa", path)
    with pytest.raises(ImageError) as caught:
        sample.rgb()
    assert_one_line(caught, "sample '9'", "simplevqa.jsonl: row 0 (line 1), column 'image'", "cannot decode")


def test_livevqa_corrupt_image_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "n1.jpg").write_bytes(truncated("JPEG"))
    path = tmp_path / "livevqa.json"
    path.write_text(json.dumps([{"id": "lv", "img_path": "img/n1.jpg", "level1_qas": [
        {"question": "q?", "answer": "a"}]}]), encoding="utf-8")
    [sample] = loaders.load("livevqa", path)
    with pytest.raises(ImageError) as caught:
        sample.rgb()
    assert_one_line(caught, "sample 'lv#level1_qas-0'", "livevqa.json: row 0, column 'img_path'", "n1.jpg")


def test_infoseek_corrupt_image_file_names_the_file(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "oven_1.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 20)
    path = tmp_path / "infoseek_val.jsonl"
    path.write_text(json.dumps({"data_id": "iv_1", "image_id": "oven_1", "question": "q?", "answer": ["a"]}) + "\n",
                    encoding="utf-8")
    [sample] = loaders.load("infoseek", path)
    with pytest.raises(ImageError) as caught:
        sample.rgb()
    assert_one_line(caught, "sample 'iv_1'", "infoseek_val.jsonl: row 0 (line 1), column 'image_id'",
                    "oven_1.jpg")


def test_suite_directory_corrupt_image_names_sample_and_file(tmp_path: Path) -> None:
    root = tmp_path / "suite"
    write_suite([VQASample("s1", png(), "q?", ("a",)), VQASample("s2", png((3, 3, 3)), "q?", ("b",))], root)
    image = root / "images" / "s2.png"
    image.write_bytes(image.read_bytes()[:100])
    samples = read_suite(root, verify=False)
    with pytest.raises(ImageError) as caught:
        samples[1].rgb()
    assert_one_line(caught, "sample 's2'", "images/s2.png", "cannot decode")


def test_write_suite_refuses_a_damaged_png_instead_of_copying_it(tmp_path: Path) -> None:
    """Regression: PNG bytes were copied byte for byte without decoding, so a truncated PNG made a
    suite that failed only mid-run."""
    bad = VQASample("s1", truncated(), "q?", ("a",), image_origin="x.parquet: row 4, column 'images[0]'")
    with pytest.raises(ImageError, match=r"sample 's1' \(x\.parquet: row 4, column 'images\[0\]'\): cannot decode"):
        write_suite([bad], tmp_path / "suite")
    assert not (tmp_path / "suite" / "suite.json").exists()


def test_loader_rows_with_unscorable_answers_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "simplevqa.jsonl"
    path.write_text(json.dumps({"data_id": 1, "image": base64.b64encode(png()).decode(), "question": "q?",
                                "answer": []}) + "\n", encoding="utf-8")
    with pytest.raises(LoaderError, match=r"simplevqa\.jsonl: row 0 \(line 1\), column 'answer': is empty"):
        loaders.load("simplevqa", path)
    suite = tmp_path / "suite"
    write_suite([VQASample("s1", png(), "q?", ("a",))], suite)
    lines = (suite / "samples.jsonl").read_text(encoding="utf-8").replace('"answers":["a"]', '"answers":[]')
    (suite / "samples.jsonl").write_text(lines, encoding="utf-8")
    with pytest.raises(ValueError, match=r"samples\.jsonl' line 1: sample 's1': answers is empty"):
        read_suite(suite, verify=False)


def test_common_module_still_exports_the_helpers() -> None:
    assert RowContext(Path("f.jsonl"), 3).at("image") == "f.jsonl: row 3, column 'image'"
    with pytest.raises(ValueError, match="limit must be an int >= 0, got -1"):
        collect([], "x", limit=-1)


def test_data_convert_reports_a_damaged_image_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mmsearch_gym.cli import app

    path = write_verl(tmp_path / "fvqa_test.parquet", [verl_row(1, png(), "q1?", "a", []),
                                                       verl_row(2, truncated(), "q2?", "b", [])])
    result = CliRunner().invoke(app, ["data", "convert", f"fvqa:{path}", str(tmp_path / "out")], terminal_width=400)
    assert result.exit_code == 2 and not isinstance(result.exception, ImageError)
    assert "sample '2'" in result.output and "row 1, column 'images[0]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out" / "suite.json").exists()
