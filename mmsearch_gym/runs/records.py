"""The episode records of a run: `episodes.jsonl`, one JSON object per line, appended as episodes end.

Why JSONL with one fsynced line per episode: a run killed at any moment (even SIGKILL) loses at most
the episode in flight. Reading and writing are split on purpose:

- `RecordsFile` (and `read_records`) only read. They never modify the file, so a judge, an SFT job or
  a submission packer can read a run that is still being written. An unfinished last line (a kill
  during a write) is left out and reported in `torn`.
- `RecordsAppender` is the single writer, used by a resuming run: it moves a torn last line aside to
  `episodes.jsonl.torn` (kept, never deleted), cuts it from the file, and that episode is played again.

Only the last line can be torn by a kill: every line is written whole and fsynced before the next one
starts. A damaged line anywhere else (blank, not JSON, no index, an episode recorded twice) is real
corruption, and every reader refuses it with one line naming the file, the line and the remedy.

Agents can say anything, including lone surrogates such as "\\ud800" that UTF-8 cannot encode:
`encode_record` writes those as JSON escapes, so the record is kept and reads back to the same string.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from mmsearch_gym.checks import require_int

RECORDS_FILE = "episodes.jsonl"
TORN_SUFFIX = ".torn"

Record = dict[str, Any]


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (the message names the file and the remedy)."""


class RecordsError(RunDirectoryError):
    """A records file that cannot be read as a run (the message names the file, the line and the remedy)."""


@dataclass(frozen=True)
class TornTail:
    """An unfinished last line: where it starts (line number, byte offset) and its bytes."""

    line: int
    offset: int
    data: bytes


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One record as one line of bytes (no newline): sorted keys, compact, UTF-8.

    Text UTF-8 cannot carry (lone surrogates) is written as its JSON escape (``\\ud800``), which
    `json.loads` reads back to the same string (JSON's rule: an adjacent high and low surrogate read back
    as the one character they encode); well-formed text is written as it is."""
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace")


def _record_index(value: Any) -> int | None:
    """The record's episode index (an int >= 0), or None when it has none."""
    try:
        return require_int("index", value.get("index") if isinstance(value, Mapping) else None, low=0)
    except ValueError:
        return None


def _corrupt(name: str, line: int, what: str) -> RecordsError:
    return RecordsError(
        f"{name} line {line} {what}; only the last line of a killed run can be torn, so this file was edited "
        f"or damaged: delete line {line} (its episode is played again when the run resumes) or start over "
        "in a new run directory")


def parse_records(data: bytes, name: str = RECORDS_FILE) -> tuple[dict[int, Record], TornTail | None]:
    """Episode index -> record for every line of `data`, plus the torn last line if there is one.

    A last line that is not complete JSON (unterminated, or ended by a newline after a partial write)
    is torn; any other bad line raises `RecordsError` naming `name`, the line and the remedy."""
    records: dict[int, Record] = {}
    first_line: dict[int, int] = {}
    lines = data.split(b"\n")
    if lines[-1] == b"":  # the file ends with a newline (or is empty)
        lines.pop()
    offset = 0
    for number, line in enumerate(lines, 1):
        last = number == len(lines)
        try:
            value = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            if last:
                return records, TornTail(line=number, offset=offset, data=data[offset:])
            what = "is blank" if not line.strip() else "is not valid JSON"
            raise _corrupt(name, number, what) from None
        if last and offset + len(line) == len(data):  # complete JSON but no newline: the write was cut
            return records, TornTail(line=number, offset=offset, data=data[offset:])
        index = _record_index(value)
        if index is None:
            raise _corrupt(name, number, "is not an episode record (no integer 'index' >= 0)")
        if index in records:
            raise RecordsError(
                f"{name} lines {first_line[index]} and {number} both record episode {index}; delete one of them "
                "(or both, to play the episode again when the run resumes)")
        records[index] = value
        first_line[index] = number
        offset += len(line) + 1
    return records, None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise RecordsError(f"cannot read run records {str(path)!r}: {error.strerror or error}") from None


class RecordsFile:
    """A read-only view of a records file: `records` (episode index -> record), `ordered()`, and
    `torn` (the unfinished last line a kill left, not counted as an episode). A missing file is empty.
    Reading never modifies the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records: dict[int, Record] = {}
        self.torn: TornTail | None = None
        if self.path.exists():
            self.records, self.torn = parse_records(_read_bytes(self.path), str(self.path))

    def __contains__(self, index: object) -> bool:
        return index in self.records

    def __len__(self) -> int:
        return len(self.records)

    def ordered(self) -> list[Record]:
        """The records sorted by episode index."""
        return [self.records[index] for index in sorted(self.records)]


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """The records of `path` ordered by episode index (a torn last line left out)."""
    return RecordsFile(path).ordered()


class RecordsAppender(RecordsFile):
    """The writer of a run's records. Opening it sets a torn last line aside (appended to
    `<file>.torn`) and cuts it from the file, so its episode is played again; `append` writes one
    record and fsyncs it before returning."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        if self.torn is not None:
            self._set_torn_aside(self.torn)
            self.torn = None

    def _set_torn_aside(self, torn: TornTail) -> None:
        with open(self.path.with_name(self.path.name + TORN_SUFFIX), "ab") as aside:
            aside.write(torn.data if torn.data.endswith(b"\n") else torn.data + b"\n")
            aside.flush()
            os.fsync(aside.fileno())
        with open(self.path, "r+b") as handle:
            handle.truncate(torn.offset)
            os.fsync(handle.fileno())

    def append(self, record: Mapping[str, Any]) -> None:
        """Write `record` (a JSON object with a new integer `index`) as one fsynced line."""
        index = _record_index(record)
        if index is None:
            raise ValueError(f"a record needs an integer 'index' >= 0, got {record.get('index')!r}")
        if index in self.records:
            raise ValueError(f"episode {index} is already recorded in {self.path}")
        line = encode_record(record) + b"\n"
        with open(self.path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.records[index] = dict(record)
