"""SimpleVQA (Cheng et al., 2025), a bilingual factuality VQA benchmark, from its released files.

Schema assumed (HF dataset card `m-a-p/SimpleVQA`; JSONL, JSON or parquet):

- `data_id` (str or int), `question`, `answer` (str; a list of str is accepted too),
- `image`: base64 text (with or without a `data:image/...;base64,` prefix), an HF image struct
  `{bytes, path}`, raw bytes, or a file path relative to `image_dir` / the data file's folder;
  an http(s) URL is an error because loaders never download (DESIGN §7),
- optional `image_url` (kept as meta["image_url"]), `answer_aliases` / `candidate_answers`
  (become candidate answers), and metadata kept in meta: `image_description`, `language`,
  `original_category`, `source` (as meta["dataset_source"], since `VQASample.source` names the loader),
  `atomic_question`, `atomic_fact`, ...

`image_path` is accepted as an alias of `image` (some re-releases store files instead of base64).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmsearch_gym.data.loaders.building import collect, iter_table_samples, make_sample, stable_id
from mmsearch_gym.data.loaders.cells import as_text, as_text_list
from mmsearch_gym.data.loaders.errors import RowContext
from mmsearch_gym.data.loaders.image_cells import image_from_struct, image_from_text
from mmsearch_gym.data.sample import VQASample

NAME = "simplevqa"
COL_DATA_ID = "data_id"
COL_QUESTION = "question"
COL_ANSWER = "answer"
IMAGE_COLUMNS = ("image", "image_path")
COL_IMAGE_URL = "image_url"
ALIAS_COLUMNS = ("answer_aliases", "candidate_answers")
COL_SOURCE = "source"

PARQUET_REQUIRED = (COL_QUESTION, COL_ANSWER)
PARQUET_OPTIONAL = (COL_DATA_ID, *IMAGE_COLUMNS, COL_IMAGE_URL, *ALIAS_COLUMNS, COL_SOURCE,
                    "image_description", "language", "original_category", "atomic_question", "atomic_fact")
SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")


def image_cell(context: RowContext, column: str, value: Any, base_dirs: tuple[Path, ...]
               ) -> tuple[bytes | Path, str | None]:
    """An image from base64 text, a path, an `{bytes, path}` struct or raw bytes."""
    if isinstance(value, str):
        return image_from_text(context, column, value, base_dirs)
    return image_from_struct(context, column, value, base_dirs)


def _row_sample(context: RowContext, record: dict[str, Any], base_dirs: tuple[Path, ...]) -> VQASample:
    question = as_text(context, COL_QUESTION, context.require(record, COL_QUESTION))
    answers = as_text_list(context, COL_ANSWER, context.require(record, COL_ANSWER))
    if not answers:
        raise context.error(COL_ANSWER, "is empty", record[COL_ANSWER])
    image_column, value = context.first_present(record, IMAGE_COLUMNS)
    assert image_column is not None
    image, image_path = image_cell(context, image_column, value, base_dirs)
    aliases: tuple[str, ...] = ()
    for column in ALIAS_COLUMNS:
        aliases += as_text_list(context, column, record.get(column))
    data_id = record.get(COL_DATA_ID)
    sample_id = as_text(context, COL_DATA_ID, data_id) if data_id is not None \
        else stable_id(NAME, context.file, context.row)
    skip = {COL_DATA_ID, COL_QUESTION, COL_ANSWER, *IMAGE_COLUMNS, *ALIAS_COLUMNS, COL_SOURCE}
    meta: dict[str, Any] = {"file": str(context.file), "row": context.row,
                            **{k: v for k, v in record.items() if k not in skip and v is not None}}
    if record.get(COL_SOURCE) is not None:
        meta["dataset_source"] = record[COL_SOURCE]
    return make_sample(sample_id, image, question, answers, aliases, NAME, meta, image_path,
                       image_origin=context.at(image_column))


def iter_samples(path: str | Path, *, image_dir: str | Path | None = None) -> Iterator[VQASample]:
    """Stream SimpleVQA samples from a JSONL/JSON/parquet file or every such file under a folder."""
    return iter_table_samples(path, NAME, SUFFIXES, PARQUET_REQUIRED, PARQUET_OPTIONAL,
                              lambda context, record, base_dirs: (_row_sample(context, record, base_dirs),), image_dir)


def load(path: str | Path, *, image_dir: str | Path | None = None, limit: int | None = None
         ) -> tuple[VQASample, ...]:
    """Every SimpleVQA sample as a tuple (base64 images become encoded bytes, paths stay paths)."""
    return collect(iter_samples(path, image_dir=image_dir), f"simplevqa:{path}", limit)
