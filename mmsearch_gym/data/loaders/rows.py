"""Finding a benchmark's data files and streaming their rows (parquet, JSON, JSONL) with row contexts.

pyarrow is imported lazily: JSON loaders (and `import mmsearch_gym`) work without it. Parquet is read
one record batch at a time and only the columns a loader names, so a multi-GB file with large unused
columns never sits in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mmsearch_gym.data.loaders.errors import LoaderError, RowContext, excerpt

PARQUET_BATCH_ROWS = 256
"""Rows per pyarrow record batch: small enough that a batch of inline images stays a few MB."""


def existing_file(path: str | Path, what: str) -> Path:
    """The path as a Path, or FileNotFoundError naming the loader and the path."""
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise FileNotFoundError(f"{what}: file not found: {str(resolved)!r}")
    return resolved


def data_files(path: Path, suffixes: Sequence[str], what: str) -> list[Path]:
    """A single file, or the sorted data files under a directory (an HF dataset snapshot keeps
    its parquet shards in subfolders such as `data/`)."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise FileNotFoundError(f"{what}: no {'/'.join(suffixes)} files under directory {str(path)!r}")
    return files


def parquet_columns(path: Path) -> list[str]:
    pq = _pyarrow_parquet()
    try:
        return list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as error:  # pyarrow raises several types for a damaged file
        raise LoaderError(f"{path}: not a readable parquet file ({error})", file=path) from error


def iter_parquet_rows(path: Path, required: Sequence[str], optional: Sequence[str] = (),
                      batch_size: int = PARQUET_BATCH_ROWS) -> Iterator[tuple[RowContext, dict[str, Any]]]:
    """Rows of a parquet file as dicts, one record batch at a time (never the whole table).

    Only `required` + present `optional` columns are read, so a file's other large columns cost
    nothing. A missing required column is an error naming the file and the column.
    """
    pq = _pyarrow_parquet()
    names = parquet_columns(path)
    missing = [column for column in required if column not in names]
    if missing:
        raise LoaderError(
            f"{path}: missing column {', '.join(map(repr, missing))} (columns present: {', '.join(names)})",
            file=path, column=missing[0])
    columns = list(required) + [c for c in optional if c in names and c not in required]
    row = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=columns):
        for record in batch.to_pylist():
            yield RowContext(path, row), record
            row += 1


def iter_json_rows(path: Path, list_keys: Sequence[str] = ("data", "samples", "items", "questions")
                   ) -> Iterator[tuple[RowContext, dict[str, Any]]]:
    """Rows of a JSONL file (streamed line by line) or a JSON file holding a list of objects, or an
    object whose `list_keys` entry (or whose values, when it maps ids to objects) is that list."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _iter_jsonl(path)
        return
    try:
        with path.open("r", encoding="utf-8") as handle:
            document = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LoaderError(f"{path}: not valid JSON ({error})", file=path) from error
    records: Any = document
    if isinstance(document, dict):
        key = next((k for k in list_keys if isinstance(document.get(k), list)), None)
        if key is not None:
            records = document[key]
        elif document and all(isinstance(v, dict) for v in document.values()):
            records = [{"id": str(k), **v} if "id" not in v else v for k, v in document.items()]
    if not isinstance(records, list):
        raise LoaderError(f"{path}: expected a JSON list of objects (or an object with one of "
                          f"{', '.join(list_keys)} holding that list), got {type(document).__name__}",
                          file=path)
    for row, record in enumerate(records):
        context = RowContext(path, row)
        if not isinstance(record, dict):
            raise LoaderError(f"{context.where}: expected a JSON object, got {excerpt(record)}",
                              file=path, row=row)
        yield context, record


def _iter_jsonl(path: Path) -> Iterator[tuple[RowContext, dict[str, Any]]]:
    row = 0
    with path.open("r", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            context = RowContext(path, row, line=line_number)
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise LoaderError(f"{context.where}: not valid JSON ({error}); text: {excerpt(line.strip())}",
                                  file=path, row=row) from error
            if not isinstance(record, dict):
                raise LoaderError(f"{context.where}: expected a JSON object, got {excerpt(record)}",
                                  file=path, row=row)
            yield context, record
            row += 1


def iter_table_rows(path: Path, required_parquet: Sequence[str], optional_parquet: Sequence[str] = ()
                    ) -> Iterator[tuple[RowContext, dict[str, Any]]]:
    """Rows of a parquet, JSONL or JSON file, chosen by suffix."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from iter_parquet_rows(path, required_parquet, optional_parquet)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        yield from iter_json_rows(path)
    else:
        raise LoaderError(f"{path}: unsupported file type {suffix!r} (expected .parquet, .jsonl or .json)",
                          file=path)


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("reading parquet benchmark files needs pyarrow: pip install 'mmsearch-gym[data]'"
                          ) from error
    return pq
