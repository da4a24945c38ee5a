"""Helpers shared by the benchmark loaders: row streaming and errors that say where a file is wrong.

Why one module: every loader reads some mix of parquet, JSON and JSONL, converts loosely typed
cells (a string or a list, a JSON-encoded list, an image struct, base64 text) and must point at the
exact file, row and column when something is malformed, so a user can fix a multi-GB file without
guessing. pyarrow is imported lazily: JSON loaders (and `import mmsearch_gym`) work without it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from mmsearch_gym.data.sample import VQASample

PARQUET_BATCH_ROWS = 256
"""Rows per pyarrow record batch: small enough that a batch of inline images stays a few MB."""

EXCERPT_CHARS = 80
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".JPEG", ".JPG", ".png", ".PNG", ".webp", ".gif", ".bmp")
"""Tried in order when a dataset names an image by id only (InfoSeek's `image_id`)."""

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


class LoaderError(ValueError):
    """A benchmark file is missing a column or holds a malformed value.

    A ValueError so callers of `resolve_dataset` (which raises ValueError for every bad dataset)
    need no extra except clause. `file`, `row` and `column` are kept as attributes for tools.
    """

    def __init__(self, message: str, file: str | Path | None = None, row: int | None = None,
                 column: str | None = None) -> None:
        super().__init__(message)
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line repr of a cell for error messages (images and long text are cut)."""
    if isinstance(value, (bytes, bytearray)):
        head = bytes(value[:16])
        return f"<{len(value)} bytes starting {head!r}>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class RowContext:
    """Where a row sits (file and 0-based row index), to build errors that name file, row and column.

    For JSONL the row is the 0-based index of the record; `line` (1-based) is added when known.
    """

    def __init__(self, file: str | Path, row: int, line: int | None = None) -> None:
        self.file = Path(file)
        self.row = row
        self.line = line

    @property
    def where(self) -> str:
        line = f" (line {self.line})" if self.line is not None else ""
        return f"{self.file}: row {self.row}{line}"

    def error(self, column: str, problem: str, value: Any = ...) -> LoaderError:
        shown = "" if value is ... else f"; value: {excerpt(value)}"
        return LoaderError(f"{self.where}, column {column!r}: {problem}{shown}",
                           file=self.file, row=self.row, column=column)

    def require(self, record: Mapping[str, Any], column: str) -> Any:
        """The cell, or an error naming the missing column (JSON rows may lack keys row by row)."""
        if column not in record:
            present = ", ".join(sorted(map(str, record))) or "none"
            raise LoaderError(f"{self.where}: missing column {column!r} (columns present: {present})",
                              file=self.file, row=self.row, column=column)
        return record[column]

    def first_present(self, record: Mapping[str, Any], columns: Sequence[str], required: bool = True,
                      prefix: str = "") -> tuple[str | None, Any]:
        """(name, value) of the first of `columns` present and not None; for releases that renamed
        a field. With required=True a row lacking all of them is an error listing the aliases
        (each written after `prefix`, the path of a nested record such as "level1_qas[0].")."""
        for column in columns:
            if record.get(column) is not None:
                return column, record[column]
        if required:
            present = ", ".join(sorted(map(str, record))) or "none"
            names = " / ".join(repr(prefix + column) for column in columns)
            raise LoaderError(f"{self.where}: missing column {names} (columns present: {present})",
                              file=self.file, row=self.row, column=prefix + columns[0])
        return None, None


# ------------------------------------------------------------------------------------- files


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


# ------------------------------------------------------------------------------------- rows


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


# ------------------------------------------------------------------------------------- cells


def as_text(context: RowContext, column: str, value: Any, allow_empty: bool = False) -> str:
    """A string cell (numbers are accepted and written in decimal: ids and numeric answers)."""
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
        raise context.error(column, f"expected a string, got {type(value).__name__}", value)
    text = value.strip() if isinstance(value, str) else str(value)
    if not text and not allow_empty:
        raise context.error(column, "is empty", value)
    return text


def as_text_list(context: RowContext, column: str, value: Any, json_encoded: bool = False) -> tuple[str, ...]:
    """A list-of-strings cell; a single string is one item, None is none. With `json_encoded`, a
    string must be a JSON list (FVQA's `candidate_answers`); otherwise a string is tried as a JSON
    list only when it looks like one (`[...]`), as some releases stringify their lists."""
    if value is None:
        return ()
    if isinstance(value, str):
        stripped = value.strip()
        if json_encoded or (stripped.startswith("[") and stripped.endswith("]")):
            if not stripped:
                return ()
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as error:
                if json_encoded:
                    raise context.error(column, f"expected a JSON-encoded list of strings ({error})",
                                        value) from error
                return (stripped,) if stripped else ()
            if isinstance(value, str):
                value = [value]
        else:
            return (stripped,) if stripped else ()
    if isinstance(value, (list, tuple)):
        items: list[str] = []
        for position, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise context.error(f"{column}[{position}]", f"expected a string, got {type(item).__name__}",
                                    item)
            text = item.strip() if isinstance(item, str) else str(item)
            if text and text not in items:
                items.append(text)
        return tuple(items)
    raise context.error(column, f"expected a list of strings, got {type(value).__name__}", value)


def check_image_bytes(context: RowContext, column: str, data: bytes) -> bytes:
    """Reject bytes that are not an encoded image, by magic number only (decoding happens on use)."""
    head = bytes(data[:16])
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return bytes(data)
    raise context.error(column, "is not an encoded image (JPEG/PNG/GIF/WebP/BMP/TIFF)", data)


def resolve_image_path(context: RowContext, column: str, value: str, base_dirs: Iterable[Path]) -> Path:
    """An image path as given (absolute) or relative to the first of `base_dirs` that holds it."""
    candidate = Path(value).expanduser()
    tried: list[Path] = []
    if candidate.is_absolute():
        tried.append(candidate)
    else:
        tried.extend(base / candidate for base in base_dirs)
    for option in tried:
        if option.is_file():
            return option
    raise context.error(column, f"image file not found (looked for {', '.join(map(str, tried))})", value)


def image_from_struct(context: RowContext, column: str, value: Any, base_dirs: Iterable[Path]
                      ) -> tuple[bytes | Path, str | None]:
    """An HF `Image` struct `{bytes, path}` (or raw bytes) as (bytes or file path, original path).

    Bytes win over the path: in HF parquet the path is usually just the original file name.
    """
    if isinstance(value, (bytes, bytearray)):
        return check_image_bytes(context, column, bytes(value)), None
    if not isinstance(value, Mapping):
        raise context.error(column, f"expected an image struct {{bytes, path}}, got {type(value).__name__}",
                            value)
    data, path = value.get("bytes"), value.get("path")
    if data:
        if isinstance(data, str):  # a JSON release may carry the struct's bytes as base64 text
            data = decode_base64(context, f"{column}.bytes", data)
        return check_image_bytes(context, f"{column}.bytes", data), path if isinstance(path, str) else None
    if isinstance(path, str) and path:
        return resolve_image_path(context, f"{column}.path", path, base_dirs), path
    raise context.error(column, "image struct has neither bytes nor a path", value)


def decode_base64(context: RowContext, column: str, text: str) -> bytes:
    """Bytes of base64 text, with or without a `data:image/...;base64,` prefix."""
    payload = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as error:
        raise context.error(column, f"not valid base64 ({error})", text) from error


def looks_like_base64_image(text: str) -> bool:
    """True for a data URL or a long run of base64 characters (not a file name or a URL)."""
    if text.startswith("data:image/"):
        return True
    if len(text) < 64 or "." in text[-8:]:  # short strings and `name.jpg` are paths
        return False
    head = "".join(text[:256].split())
    return all(c.isascii() and (c.isalnum() or c in "+/=") for c in head)


def image_from_text(context: RowContext, column: str, text: str, base_dirs: Iterable[Path]
                    ) -> tuple[bytes | Path, str | None]:
    """A string image cell: a data URL / base64 text (-> bytes) or a file path (-> Path).

    Returns (image, url): an http(s) URL cannot be used because nothing is downloaded at run time
    (DESIGN §7); it is an error that says to download the images and give their folder.
    """
    text = text.strip()
    if text.startswith(("http://", "https://")):
        raise context.error(column, "is a URL; loaders never download (DESIGN §7): download the images "
                                    "and pass image_dir= the folder holding them", text)
    if looks_like_base64_image(text):
        return check_image_bytes(context, column, decode_base64(context, column, text)), None
    return resolve_image_path(context, column, text, base_dirs), None


def find_image_by_id(image_dir: Path, image_id: str, extensions: Sequence[str] = IMAGE_EXTENSIONS
                     ) -> Path | None:
    """`<image_dir>/<image_id><ext>` for the first extension that exists (or the id as a file name)."""
    for extension in ("", *extensions):
        candidate = image_dir / f"{image_id}{extension}"
        if candidate.is_file():
            return candidate
    return None


# ------------------------------------------------------------------------------------- samples


def build_samples(rows: Iterable[tuple[RowContext, dict[str, Any]]],
                  build: Callable[[RowContext, dict[str, Any]], VQASample | Iterable[VQASample] | None]
                  ) -> Iterator[VQASample]:
    """Samples built row by row: a builder returns one sample, several (a row holding a list of
    questions) or None (row skipped). A ValueError from `VQASample`'s own checks gets the file and
    row prepended, so every error points into the file."""
    for context, record in rows:
        try:
            built = build(context, record)
            produced = [built] if isinstance(built, VQASample) else [] if built is None else list(built)
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
                source: str, meta: dict[str, Any], image_path: str | None = None) -> VQASample:
    """A VQASample whose candidate answers are the aliases not already among `answers` (order kept,
    duplicates dropped) and whose meta names the image file when there is one."""
    if image_path:
        meta["image_path"] = image_path
    if isinstance(image, Path):
        meta.setdefault("image_path", str(image))
    return VQASample(id=sample_id, image=image, question=question, answers=answers,
                     candidate_answers=tuple(dict.fromkeys(a for a in aliases if a not in answers)),
                     category=None, source=source, meta=meta)


def stable_id(prefix: str, file: Path, row: int) -> str:
    """An id for rows without one: loader, file name and row, the same on every machine."""
    return f"{prefix}:{file.name}:{row}"


def collect(samples: Iterable[VQASample], origin: str, limit: int | None = None) -> tuple[VQASample, ...]:
    """All samples as a tuple (the env needs len() and indexing), rejecting duplicate ids with the
    file and rows of both occurrences (from meta['file'] / meta['row'])."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative integer or None, got {limit!r}")
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


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("reading parquet benchmark files needs pyarrow: pip install 'mmsearch-gym[data]'"
                          ) from error
    return pq
