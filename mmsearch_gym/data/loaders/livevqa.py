"""LiveVQA (Fu et al., 2025), visual questions about recent news, from its released JSON files.

Schema assumed (github.com/fumingyang2004/LiveVQA, HF dataset `ONE-Lab/LiveVQA`). Releases differ,
so each field is looked up under a few names, first present wins:

- id: `id`, `sample_id`, `data_id` (else `livevqa:<file>:<row>`),
- question: `question`, `query`,
- answer: `answer`, `answers`, `gt_answer`, `Ground_Truth`, `ground_truth` (str or list of str),
- other accepted answers: `Ground_Truth_List`, `alternative_gt_answers`, `candidate_answers`,
  `answer_aliases`,
- image: `image`, `image_path`, `img_path`, `img`, `query_image` — a path relative to `image_dir`
  or the JSON file's folder, base64 text, or an `{bytes, path}` struct; `image_url` / `img_url` is
  kept in meta (never downloaded).

A file is a JSON list of such records, an object holding the list under `data` / `samples` /
`items` / `questions`, JSONL, or parquet. A record may instead be a news item whose questions sit in
lists under keys named like `level1_qas`, `level2_qas` or `qas`: each question becomes a sample that
inherits the item's image and id (`<item id>#<key>-<index>`) unless it has its own. Other fields
(`topic`, `level`, `options`, ...) are kept in meta.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mmsearch_gym.data.loaders.building import collect, iter_table_samples, make_sample, stable_id
from mmsearch_gym.data.loaders.cells import as_text, as_text_list
from mmsearch_gym.data.loaders.errors import RowContext
from mmsearch_gym.data.loaders.simplevqa import image_cell
from mmsearch_gym.data.sample import VQASample

NAME = "livevqa"
ID_COLUMNS = ("id", "sample_id", "data_id")
QUESTION_COLUMNS = ("question", "query")
ANSWER_COLUMNS = ("answer", "answers", "gt_answer", "Ground_Truth", "ground_truth")
ALIAS_COLUMNS = ("Ground_Truth_List", "alternative_gt_answers", "candidate_answers", "answer_aliases")
IMAGE_COLUMNS = ("image", "image_path", "img_path", "img", "query_image")
URL_COLUMNS = ("image_url", "img_url")
NESTED_QA_KEY = re.compile(r"^(?:level_?\d+_)?qas?$|^questions$", re.IGNORECASE)

PARQUET_REQUIRED: tuple[str, ...] = ()
PARQUET_OPTIONAL = (*ID_COLUMNS, *QUESTION_COLUMNS, *ANSWER_COLUMNS, *ALIAS_COLUMNS, *IMAGE_COLUMNS,
                    *URL_COLUMNS, "topic", "level", "options", "question_type")
SUFFIXES = (".json", ".jsonl", ".ndjson", ".parquet")
_KNOWN = {*ID_COLUMNS, *QUESTION_COLUMNS, *ANSWER_COLUMNS, *ALIAS_COLUMNS, *IMAGE_COLUMNS, *URL_COLUMNS}


def _nested_keys(record: Mapping[str, Any]) -> list[str]:
    return [k for k, v in record.items() if NESTED_QA_KEY.match(str(k)) and isinstance(v, list)
            and v and all(isinstance(item, Mapping) for item in v)]


def _sample_id(context: RowContext, record: Mapping[str, Any], parent: Mapping[str, Any] | None,
               suffix: str, prefix: str) -> str:
    """The record's own id; for a nested question without one, `<item id>#<key>-<index>`."""
    column, value = context.first_present(record, ID_COLUMNS, required=False)
    if value is not None:
        return as_text(context, f"{prefix}{column}", value)
    if parent is None:
        return stable_id(NAME, context.file, context.row)
    column, value = context.first_present(parent, ID_COLUMNS, required=False)
    base = as_text(context, str(column), value) if value is not None else stable_id(NAME, context.file, context.row)
    return f"{base}#{suffix}"


def _sample(context: RowContext, record: Mapping[str, Any], base_dirs: tuple[Path, ...],
            parent: Mapping[str, Any] | None, suffix: str, prefix: str) -> VQASample:
    merged: dict[str, Any] = {**(parent or {}), **record}
    q_column, q_value = context.first_present(merged, QUESTION_COLUMNS, prefix=prefix)
    question = as_text(context, f"{prefix}{q_column}", q_value)
    a_column, a_value = context.first_present(merged, ANSWER_COLUMNS, prefix=prefix)
    answers = as_text_list(context, f"{prefix}{a_column}", a_value)
    if not answers:
        raise context.error(f"{prefix}{a_column}", "is empty", a_value)
    aliases: list[str] = []
    for column in ALIAS_COLUMNS:
        aliases += as_text_list(context, f"{prefix}{column}", merged.get(column))
    i_column, i_value = context.first_present(merged, IMAGE_COLUMNS, prefix=prefix)
    image_column = f"{prefix}{i_column}" if i_column in record else str(i_column)  # own image or the item's
    image, image_path = image_cell(context, image_column, i_value, base_dirs)
    sample_id = _sample_id(context, record, parent, suffix, prefix)
    _, url = context.first_present(merged, URL_COLUMNS, required=False)
    meta: dict[str, Any] = {"file": str(context.file), "row": context.row,
                            **{k: v for k, v in merged.items() if k not in _KNOWN and v is not None}}
    if isinstance(url, str) and url:
        meta["image_url"] = url
    return make_sample(sample_id, image, question, answers, aliases, NAME, meta, image_path,
                       image_origin=context.at(image_column))


def _row_samples(context: RowContext, record: dict[str, Any], base_dirs: tuple[Path, ...]
                 ) -> Iterator[VQASample]:
    nested = _nested_keys(record)
    if not nested:
        yield _sample(context, record, base_dirs, None, "", "")
        return
    parent = {k: v for k, v in record.items() if k not in nested}
    for key in nested:
        for index, qa in enumerate(record[key]):
            yield _sample(context, qa, base_dirs, parent, f"{key}-{index}", f"{key}[{index}].")


def iter_samples(path: str | Path, *, image_dir: str | Path | None = None) -> Iterator[VQASample]:
    """Stream LiveVQA samples from a JSON/JSONL/parquet file or every such file under a folder."""
    return iter_table_samples(path, NAME, SUFFIXES, PARQUET_REQUIRED, PARQUET_OPTIONAL,
                              _row_samples, image_dir)


def load(path: str | Path, *, image_dir: str | Path | None = None, limit: int | None = None
         ) -> tuple[VQASample, ...]:
    """Every LiveVQA sample as a tuple (paths stay paths, base64 images become encoded bytes)."""
    return collect(iter_samples(path, image_dir=image_dir), f"livevqa:{path}", limit)
