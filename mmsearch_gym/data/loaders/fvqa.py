"""FVQA, MMSearch-R1's training/test set, from its released parquet files.

Schema assumed (the verl-style parquet of MMSearch-R1, github.com/EvolvingLMMs-Lab/multimodal-search-r1,
HF dataset `lmms-lab/FVQA`, files such as `fvqa_train.parquet` / `fvqa_test.parquet`):

- `prompt`: list of `{role, content}` chat messages; the user turn holds the question, possibly with an
  `<image>` placeholder and MMSearch-R1's instruction template around it ("... Question: <q>").
  `content` may also be a list of `{type, text}` parts.
- `images`: list of HF image structs `{bytes, path}`; the first is the question image.
- `reward_model`: struct `{ground_truth: str, candidate_answers: str (a JSON-encoded list of str), style}`.
- `data_source` (str), `image_urls` (list of str or null), and where present `data_id`, `category`
  (`search_free` / `search_required`), `extra_info` (struct; its `question`, when present, is preferred
  to parsing the prompt because it is the question without template), `ability`.

The question is taken, in order, from `extra_info.question`, from the text after the last line
starting with "Question:" in the user turn (up to a blank line), or from the whole user turn; the
`<image>` placeholder is removed. Images stay encoded bytes (decoded by the env on use).

`data_id` is the sample id and is also kept, as stored (str or int), in `meta["data_id"]`: MMSearch-R1's
released search caches are keyed by it. Other files in this verl layout (MMSearch-R1's InfoSeek
sub-2k parquet) are read by the same code under their own loader name (`infoseek-sub2k`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

from mmsearch_gym.data.loaders.building import build_samples, collect, stable_id
from mmsearch_gym.data.loaders.cells import as_text, as_text_list
from mmsearch_gym.data.loaders.errors import RowContext
from mmsearch_gym.data.loaders.image_cells import image_from_struct
from mmsearch_gym.data.loaders.rows import PARQUET_BATCH_ROWS, data_files, existing_file, iter_parquet_rows
from mmsearch_gym.data.sample import VQASample

NAME = "fvqa"
COL_PROMPT = "prompt"
COL_IMAGES = "images"
COL_REWARD_MODEL = "reward_model"
FIELD_GROUND_TRUTH = "ground_truth"
FIELD_CANDIDATES = "candidate_answers"
FIELD_STYLE = "style"
COL_DATA_SOURCE = "data_source"
COL_IMAGE_URLS = "image_urls"
COL_DATA_ID = "data_id"
COL_CATEGORY = "category"
COL_EXTRA_INFO = "extra_info"
COL_ABILITY = "ability"

REQUIRED = (COL_PROMPT, COL_IMAGES, COL_REWARD_MODEL)
OPTIONAL = (COL_DATA_SOURCE, COL_IMAGE_URLS, COL_DATA_ID, COL_CATEGORY, COL_EXTRA_INFO, COL_ABILITY)
CATEGORIES = ("search_free", "search_required")

IMAGE_PLACEHOLDER = re.compile(r"<image>", re.IGNORECASE)
QUESTION_MARKER = re.compile(r"^[ \t]*(?:user[ \t]+)?question[ \t]*[:：][ \t]*", re.IGNORECASE | re.MULTILINE)
BLANK_LINE = re.compile(r"\n[ \t]*\n")

QuestionExtractor = Callable[[str], str]


def question_from_text(text: str) -> str:
    """The question inside a user turn: after the last "Question:" line marker (up to the next blank
    line) when there is one, else the whole turn; `<image>` placeholders removed."""
    text = IMAGE_PLACEHOLDER.sub("", text)
    markers = list(QUESTION_MARKER.finditer(text))
    if markers:
        tail = text[markers[-1].end():]
        question = BLANK_LINE.split(tail, maxsplit=1)[0].strip()
        if question:
            return question
    return text.strip()


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts
        texts = [str(part["text"]) for part in content if isinstance(part, Mapping)
                 and part.get("type", "text") == "text" and isinstance(part.get("text"), str)]
        return "\n".join(texts) if texts else None
    return None


def _user_text(context: RowContext, prompt: Any) -> str:
    if not isinstance(prompt, (list, tuple)) or not prompt:
        raise context.error(COL_PROMPT, "expected a non-empty list of {role, content} messages", prompt)
    users = [m for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users:
        raise context.error(COL_PROMPT, "has no message with role 'user'", prompt)
    text = _message_text(users[-1].get("content"))
    if text is None:
        raise context.error(f"{COL_PROMPT}.content", "user message content is not text", users[-1])
    return text


def _row_sample(context: RowContext, record: Mapping[str, Any], extract: QuestionExtractor,
                source: str) -> VQASample:
    base_dirs = (context.file.parent,)
    raw_prompt = record[COL_PROMPT]
    user_text = _user_text(context, raw_prompt)
    extra = record.get(COL_EXTRA_INFO)
    extra_question = extra.get("question") if isinstance(extra, Mapping) else None
    if isinstance(extra_question, str) and extra_question.strip():
        question = extract(extra_question)
    else:
        question = extract(user_text)
    if not question:
        raise context.error(COL_PROMPT, "no question text in the user message", user_text)

    images = record[COL_IMAGES]
    if not isinstance(images, (list, tuple)) or not images:
        raise context.error(COL_IMAGES, "expected a non-empty list of image structs {bytes, path}", images)
    image_column = f"{COL_IMAGES}[0]"
    image, image_path = image_from_struct(context, image_column, images[0], base_dirs)

    reward = record[COL_REWARD_MODEL]
    if not isinstance(reward, Mapping):
        raise context.error(COL_REWARD_MODEL, "expected a struct {ground_truth, candidate_answers, style}",
                            reward)
    gold_column = f"{COL_REWARD_MODEL}.{FIELD_GROUND_TRUTH}"
    answers = as_text_list(context, gold_column, context.require(reward, FIELD_GROUND_TRUTH))
    if not answers:
        raise context.error(gold_column, "is empty", reward.get(FIELD_GROUND_TRUTH))
    candidates = as_text_list(context, f"{COL_REWARD_MODEL}.{FIELD_CANDIDATES}",
                              reward.get(FIELD_CANDIDATES), json_encoded=True)
    candidates = tuple(c for c in candidates if c not in answers)

    category = record.get(COL_CATEGORY)
    if category is not None and category not in CATEGORIES:
        raise context.error(COL_CATEGORY, f"expected one of {CATEGORIES} or null", category)

    data_id = record.get(COL_DATA_ID)
    sample_id = as_text(context, COL_DATA_ID, data_id) if data_id is not None \
        else stable_id(source, context.file, context.row)

    urls = record.get(COL_IMAGE_URLS)
    if isinstance(urls, str):
        urls = [urls]
    image_url = next((u for u in urls or () if isinstance(u, str) and u), None)

    meta: dict[str, Any] = {
        "file": str(context.file), "row": context.row, "prompt": raw_prompt,
        "data_source": record.get(COL_DATA_SOURCE), "image_url": image_url,
        "reward_style": reward.get(FIELD_STYLE), "n_images": len(images),
    }
    if data_id is not None:
        meta["data_id"] = data_id
    if image_path:
        meta["image_path"] = image_path
    if record.get(COL_ABILITY) is not None:
        meta["ability"] = record[COL_ABILITY]
    if isinstance(extra, Mapping):
        meta["extra_info"] = dict(extra)
    return VQASample(id=sample_id, image=image, question=question, answers=answers,
                     candidate_answers=candidates, category=category, source=source, meta=meta,
                     image_origin=context.at(image_column))


def iter_verl_samples(path: str | Path, source: str, *, question_extractor: QuestionExtractor = question_from_text,
                      batch_size: int = PARQUET_BATCH_ROWS) -> Iterator[VQASample]:
    """Stream samples from verl-style parquet file(s) in MMSearch-R1's layout (module docstring), one
    record batch at a time; `source` names the dataset in `VQASample.source`, errors and fallback ids."""
    root = existing_file(path, f"{source} loader")
    for file in data_files(root, (".parquet",), f"{source} loader"):
        rows = iter_parquet_rows(file, REQUIRED, OPTIONAL, batch_size=batch_size)
        yield from build_samples(rows, lambda context, record: _row_sample(context, record, question_extractor,
                                                                          source))


def iter_samples(path: str | Path, *, question_extractor: QuestionExtractor = question_from_text,
                 batch_size: int = PARQUET_BATCH_ROWS) -> Iterator[VQASample]:
    """Stream FVQA samples from a parquet file (or every parquet file under a directory), one record
    batch at a time, so a multi-GB file never sits in memory at once."""
    return iter_verl_samples(path, NAME, question_extractor=question_extractor, batch_size=batch_size)


def load(path: str | Path, *, limit: int | None = None,
         question_extractor: QuestionExtractor = question_from_text) -> tuple[VQASample, ...]:
    """Every FVQA sample of the file(s) as a tuple (images stay encoded bytes)."""
    return collect(iter_samples(path, question_extractor=question_extractor), f"fvqa:{path}", limit)
