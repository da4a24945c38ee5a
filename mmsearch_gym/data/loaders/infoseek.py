"""InfoSeek (Chen et al., 2023) from its released JSONL annotations and a folder of OVEN images.

Schema assumed (github.com/open-vision-language/infoseek, files `infoseek_train.jsonl`,
`infoseek_val.jsonl`, one JSON object per line):

- `data_id` (e.g. "infoseek_val_00000000"), `image_id` (e.g. "oven_01000000"), `question`,
- `answer`: list of accepted answers (a single string is accepted too); numeric questions in the
  `*_withkb` variants may carry `{"wikidata": value, "range": [low, high]}` objects, whose value is
  used as the answer and whose range is kept in `meta["answer_ranges"]`,
- `answer_eng`: English answer aliases (become `candidate_answers`),
- `data_split` (e.g. "val_unseen_question"), and other fields (`question_type`, `entity_id`, ...) kept in meta.

Images are not in the JSONL: the image of a row is `<image_dir>/<image_id><ext>` for the first of
`.jpg .jpeg .JPEG .JPG .png ...` that exists (the OVEN image release is JPEG). `image_dir` defaults to
an `images/` folder next to the JSONL, else the JSONL's own folder. The test split has no answers and
is rejected row by row (InfoSeek test labels are withheld).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmsearch_gym.data.loaders.building import build_samples, collect, stable_id
from mmsearch_gym.data.loaders.cells import as_text, as_text_list
from mmsearch_gym.data.loaders.errors import RowContext
from mmsearch_gym.data.loaders.image_cells import IMAGE_EXTENSIONS, find_image_by_id
from mmsearch_gym.data.loaders.rows import data_files, existing_file, iter_json_rows
from mmsearch_gym.data.sample import VQASample

NAME = "infoseek"
COL_DATA_ID = "data_id"
COL_IMAGE_ID = "image_id"
COL_QUESTION = "question"
COL_ANSWER = "answer"
COL_ANSWER_ENG = "answer_eng"
COL_DATA_SPLIT = "data_split"
NUMERIC_VALUE = "wikidata"
NUMERIC_RANGE = "range"
DEFAULT_IMAGE_SUBDIR = "images"


def _answers(context: RowContext, value: Any) -> tuple[tuple[str, ...], list[Any]]:
    """(answers, numeric ranges): strings and numbers as text; `{wikidata, range}` objects by value."""
    items = value if isinstance(value, (list, tuple)) else [value]
    plain: list[Any] = []
    ranges: list[Any] = []
    for position, item in enumerate(items):
        if isinstance(item, Mapping):
            if NUMERIC_VALUE not in item:
                raise context.error(f"{COL_ANSWER}[{position}]", f"answer object has no {NUMERIC_VALUE!r}", item)
            plain.append(item[NUMERIC_VALUE])
            if item.get(NUMERIC_RANGE) is not None:
                ranges.append(item[NUMERIC_RANGE])
        else:
            plain.append(item)
    answers = as_text_list(context, COL_ANSWER, plain)
    if not answers:
        raise context.error(COL_ANSWER, "has no answer (InfoSeek's test split is unlabelled)", value)
    return answers, ranges


def default_image_dir(annotations: Path) -> Path:
    folder = annotations if annotations.is_dir() else annotations.parent
    return folder / DEFAULT_IMAGE_SUBDIR if (folder / DEFAULT_IMAGE_SUBDIR).is_dir() else folder


def _row_sample(context: RowContext, record: dict[str, Any], image_dir: Path,
                extensions: Sequence[str], skip_missing_images: bool) -> VQASample | None:
    question = as_text(context, COL_QUESTION, context.require(record, COL_QUESTION))
    image_id = as_text(context, COL_IMAGE_ID, context.require(record, COL_IMAGE_ID))
    answers, ranges = _answers(context, context.require(record, COL_ANSWER))
    aliases = as_text_list(context, COL_ANSWER_ENG, record.get(COL_ANSWER_ENG))
    image = find_image_by_id(image_dir, image_id, extensions)
    if image is None:
        if skip_missing_images:
            return None
        raise context.error(COL_IMAGE_ID, f"no image file {image_id}{{{','.join(extensions)}}} in {image_dir}",
                            image_id)
    data_id = record.get(COL_DATA_ID)
    sample_id = as_text(context, COL_DATA_ID, data_id) if data_id is not None \
        else stable_id(NAME, context.file, context.row)
    known = {COL_DATA_ID, COL_IMAGE_ID, COL_QUESTION, COL_ANSWER, COL_ANSWER_ENG}
    meta: dict[str, Any] = {"file": str(context.file), "row": context.row, "image_id": image_id,
                            **{k: v for k, v in record.items() if k not in known}}
    if ranges:
        meta["answer_ranges"] = ranges
    return VQASample(id=sample_id, image=image, question=question, answers=answers,
                     candidate_answers=tuple(a for a in aliases if a not in answers),
                     category=None, source=NAME, meta=meta, image_origin=context.at(COL_IMAGE_ID))


def iter_samples(path: str | Path, *, image_dir: str | Path | None = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS,
                 skip_missing_images: bool = False) -> Iterator[VQASample]:
    """Stream InfoSeek samples from a JSONL file (or every .jsonl under a directory).

    skip_missing_images: drop rows whose image is absent (OVEN downloads are often partial)
        instead of raising an error naming the row.
    """
    root = existing_file(path, "infoseek loader")
    images = Path(image_dir).expanduser() if image_dir is not None else default_image_dir(root)
    if not images.is_dir():
        raise FileNotFoundError(f"infoseek loader: image folder not found: {str(images)!r}")
    for file in data_files(root, (".jsonl",), "infoseek loader"):
        yield from build_samples(iter_json_rows(file), lambda context, record: _row_sample(
            context, record, images, extensions, skip_missing_images))


def load(path: str | Path, *, image_dir: str | Path | None = None, limit: int | None = None,
         extensions: Sequence[str] = IMAGE_EXTENSIONS, skip_missing_images: bool = False
         ) -> tuple[VQASample, ...]:
    """Every InfoSeek sample as a tuple; images stay file paths (decoded on use)."""
    return collect(iter_samples(path, image_dir=image_dir, extensions=extensions,
                                skip_missing_images=skip_missing_images), f"infoseek:{path}", limit)
