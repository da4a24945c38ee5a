"""The per-episode record and the resumable JSONL file that holds a run's records.

Why JSONL with one fsynced line per episode: a run killed at any moment (even SIGKILL) loses at most
the episode in flight; on restart the file is read back, a torn last line is cut off, and only the
missing episodes are played.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

RECORDS_FILE = "episodes.jsonl"


class RecordsFile:
    """Append-only episode records, keyed by episode index."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records: dict[int, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        for line_end in _line_ends(data):
            line = data[good_end:line_end]
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ValueError(f"{self.path}: corrupt record at byte {good_end}: {error}") from error
            if not isinstance(record, dict) or not isinstance(record.get("index"), int):
                raise ValueError(f"{self.path}: record at byte {good_end} has no integer 'index'")
            if record["index"] in self.records:
                raise ValueError(f"{self.path}: duplicate record for episode {record['index']}")
            self.records[record["index"]] = record
            good_end = line_end + 1
        if good_end < len(data):  # a torn last line from a killed run: drop it
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)

    def __contains__(self, index: int) -> bool:
        return index in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: dict[str, Any]) -> None:
        if record["index"] in self.records:
            raise ValueError(f"episode {record['index']} is already recorded in {self.path}")
        line = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
        with open(self.path, "ab") as handle:
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        self.records[record["index"]] = record

    def ordered(self) -> list[dict[str, Any]]:
        return [self.records[index] for index in sorted(self.records)]


def _line_ends(data: bytes) -> Iterator[int]:
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            return
        yield end
        start = end + 1


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON (sorted keys, stable formatting) so that equal values give byte-identical files,
    and a crash never leaves a half-written file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
