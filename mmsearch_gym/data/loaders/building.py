"""Assembling samples from rows: per-row builders, ids for rows without one, duplicate-free collection.

Every loader funnels its rows through `build_samples` so that a ValueError from `VQASample`'s own
checks gets the file and row prepended, and through `collect` so that duplicate ids are reported with
both locations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from mmsearch_gym.checks import require_int
from mmsearch_gym.data.loaders.errors import LoaderError, RowContext
from mmsearch_gym.data.loaders.rows import data_files, existing_file, iter_table_rows
from mmsearch_gym.data.sample import VQASample


def build_samples(rows: Iterable[tuple[RowContext, dict[str, Any]]],
                  build: Callable[[RowContext, dict[str, Any]], VQASample | Iterable[VQASample] | None]
                  ) -> Iterator[VQASample]:
    """Samples built row by row: a builder returns one sample, several (a row holding a list of
    questions) or None (row skipped). A ValueError from `VQASample`'s own checks gets the file and
    row prepended, so every error points into the file. A sample built without `image_origin` gets
    the row's location, so a decoding error later, mid-run, still names the file and row."""
    for context, record in rows:
        try:
            built = build(context, record)
            produced = [built] if isinstance(built, VQASample) else [] if built is None else list(built)
            produced = [s if s.image_origin else replace(s, image_origin=context.where) for s in produced]
        except LoaderError:
            raise
        except ValueError as error:
            raise LoaderError(f"{context.where}: {error}", file=context.file, row=context.row) from error
        yield from produced


RowSamples = Callable[[RowContext, dict[str, Any], tuple[Path, ...]], Iterable[VQASample]]


def iter_table_samples(path: str | Path, name: str, suffixes: Sequence[str], required_parquet: Sequence[str],
                       optional_parquet: Sequence[str], row_samples: RowSamples,
                       image_dir: str | Path | None = None) -> Iterator[VQASample]:
    """Stream samples from a JSON/JSONL/parquet file, or every such file under a folder, for loaders
    whose images are inline or relative paths (looked up under `image_dir`, then beside the file)."""
    root = existing_file(path, f"{name} loader")
    for file in data_files(root, suffixes, f"{name} loader"):
        base_dirs = tuple(p for p in (Path(image_dir).expanduser() if image_dir else None, file.parent) if p)
        rows = iter_table_rows(file, required_parquet, optional_parquet)
        yield from build_samples(rows, lambda context, record: row_samples(context, record, base_dirs))


def make_sample(sample_id: str, image: Any, question: str, answers: tuple[str, ...], aliases: Iterable[str],
                source: str, meta: dict[str, Any], image_path: str | None = None,
                image_origin: str = "") -> VQASample:
    """A VQASample whose candidate answers are the aliases not already among `answers` (order kept,
    duplicates dropped) and whose meta names the image file when there is one; `image_origin` is
    where the image cell sits (`RowContext.at(column)`), for decoding errors."""
    if image_path:
        meta["image_path"] = image_path
    if isinstance(image, Path):
        meta.setdefault("image_path", str(image))
    return VQASample(id=sample_id, image=image, question=question, answers=answers,
                     candidate_answers=tuple(dict.fromkeys(a for a in aliases if a not in answers)),
                     category=None, source=source, meta=meta, image_origin=image_origin)


def stable_id(prefix: str, file: Path, row: int) -> str:
    """An id for rows without one: loader, file name and row, the same on every machine."""
    return f"{prefix}:{file.name}:{row}"


def collect(samples: Iterable[VQASample], origin: str, limit: int | None = None) -> tuple[VQASample, ...]:
    """All samples as a tuple (the env needs len() and indexing), rejecting duplicate ids with the
    file and rows of both occurrences (from meta['file'] / meta['row'])."""
    if limit is not None:
        limit = require_int("limit", limit, low=0)
    seen: dict[str, VQASample] = {}
    result: list[VQASample] = []
    for sample in samples:
        if limit is not None and len(result) >= limit:
            break
        if sample.id in seen:
            first = seen[sample.id]
            raise LoaderError(
                f"{origin}: duplicate sample id {sample.id!r} at {_where(first)} and {_where(sample)}",
                file=sample.meta.get("file"), row=sample.meta.get("row"))
        seen[sample.id] = sample
        result.append(sample)
    return tuple(result)


def _where(sample: VQASample) -> str:
    return f"{sample.meta.get('file', '?')} row {sample.meta.get('row', '?')}"
