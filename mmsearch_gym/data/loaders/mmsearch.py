"""MMSearch (Jiang et al., 2024) end-to-end queries from the released HF dataset's parquet files.

Schema assumed (HF dataset card `CaraJ/MMSearch`, config `end2end`; code github.com/CaraJ7/MMSearch):

- `sample_id` (str or int), `query` (the question), `query_image` (HF `Image` struct `{bytes, path}`,
  null for text-only queries), `gt_answer` (str), `alternative_gt_answers` (list of str; a JSON-encoded
  list or a single string is accepted too), and metadata such as `area` ("news" / "knowledge"),
  `subfield`, `timestamp`, `gt_requery` kept in meta.

Only rows with a query image are loaded: the env's task always starts from an image (MMSearch-R1
evaluates on this image subset). `path` may be one parquet file or a dataset snapshot folder (every
`*.parquet` under it, sorted). Only the columns above are read, so the end2end config's large
screenshot columns cost nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mmsearch_gym.data.loaders.building import build_samples, collect, stable_id
from mmsearch_gym.data.loaders.cells import as_text, as_text_list
from mmsearch_gym.data.loaders.errors import RowContext
from mmsearch_gym.data.loaders.image_cells import image_from_struct
from mmsearch_gym.data.loaders.rows import PARQUET_BATCH_ROWS, data_files, existing_file, iter_parquet_rows
from mmsearch_gym.data.sample import VQASample

NAME = "mmsearch"
COL_SAMPLE_ID = "sample_id"
COL_QUERY = "query"
COL_QUERY_IMAGE = "query_image"
COL_GT_ANSWER = "gt_answer"
COL_ALTERNATIVES = "alternative_gt_answers"
META_COLUMNS = ("area", "subfield", "timestamp", "gt_requery")

REQUIRED = (COL_QUERY, COL_QUERY_IMAGE, COL_GT_ANSWER)
OPTIONAL = (COL_SAMPLE_ID, COL_ALTERNATIVES, *META_COLUMNS)


def _has_image(value: Any) -> bool:
    if isinstance(value, (bytes, bytearray)):
        return bool(value)
    return isinstance(value, Mapping) and bool(value.get("bytes") or value.get("path"))


def _row_sample(context: RowContext, record: dict[str, Any]) -> VQASample | None:
    if not _has_image(record.get(COL_QUERY_IMAGE)):
        return None
    image, image_path = image_from_struct(context, COL_QUERY_IMAGE, record[COL_QUERY_IMAGE],
                                          (context.file.parent,))
    question = as_text(context, COL_QUERY, record[COL_QUERY])
    answers = as_text_list(context, COL_GT_ANSWER, record[COL_GT_ANSWER])
    if not answers:
        raise context.error(COL_GT_ANSWER, "is empty", record[COL_GT_ANSWER])
    alternatives = as_text_list(context, COL_ALTERNATIVES, record.get(COL_ALTERNATIVES))
    raw_id = record.get(COL_SAMPLE_ID)
    sample_id = as_text(context, COL_SAMPLE_ID, raw_id) if raw_id is not None \
        else stable_id(NAME, context.file, context.row)
    meta: dict[str, Any] = {"file": str(context.file), "row": context.row,
                            **{k: record[k] for k in META_COLUMNS if record.get(k) is not None}}
    if image_path:
        meta["image_path"] = image_path
    return VQASample(id=sample_id, image=image, question=question, answers=answers,
                     candidate_answers=tuple(a for a in alternatives if a not in answers),
                     category=None, source=NAME, meta=meta, image_origin=context.at(COL_QUERY_IMAGE))


def iter_samples(path: str | Path, *, batch_size: int = PARQUET_BATCH_ROWS) -> Iterator[VQASample]:
    """Stream the image queries of MMSearch parquet file(s), one record batch at a time."""
    root = existing_file(path, "mmsearch loader")
    for file in data_files(root, (".parquet",), "mmsearch loader"):
        yield from build_samples(iter_parquet_rows(file, REQUIRED, OPTIONAL, batch_size=batch_size), _row_sample)


def load(path: str | Path, *, limit: int | None = None) -> tuple[VQASample, ...]:
    """Every MMSearch query that has an image, as a tuple (images stay encoded bytes)."""
    return collect(iter_samples(path), f"mmsearch:{path}", limit)
