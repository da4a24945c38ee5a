"""Errors that say where a benchmark file is wrong: the file, the row and the column.

Why a module of its own: every loader, cell converter and row reader builds its errors through
`RowContext`, so a user can fix a multi-GB file without guessing, and tools can read `file`, `row`
and `column` from the `LoaderError` instead of parsing its message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EXCERPT_CHARS = 80


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

    def at(self, column: str) -> str:
        """The row and column as text, e.g. for `VQASample.image_origin`."""
        return f"{self.where}, column {column!r}"

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
