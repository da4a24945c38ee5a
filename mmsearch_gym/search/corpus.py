"""Reading and validating a local search corpus directory.

The corpus format is a fixed contract shared with the corpus generators: a directory holding
`pages.jsonl`, one JSON object per line::

    {"url": str, "title": str, "text": str, "images": ["images/abc.jpg", ...]}

with image paths relative to the corpus directory (a page may have no images). Blank lines are
ignored; other keys are ignored too, so generators may add metadata.

Why validate everything up front: a backend that fails in the middle of an episode turns a corpus
bug into a tool error the model sees. Every problem is reported at construction instead, as a
ValueError naming the file, the line and the offending value. No optional dependencies here.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mmsearch_gym.checks import parse_json_object

PAGES_FILE = "pages.jsonl"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class CorpusPage:
    """One page of the corpus; `offset`/`end` locate its line in pages.jsonl (so the index can read
    a page back without keeping every text in memory) and `line` is its 1-based line number."""

    url: str
    title: str
    text: str
    images: tuple[str, ...]
    line: int
    offset: int
    end: int


@dataclass(frozen=True)
class FileFingerprint:
    """size + mtime tell cheaply that pages.jsonl is unchanged; sha256 says so for certain (a copy or a
    `touch` changes mtime but not content)."""

    size: int
    mtime_ns: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "sha256": self.sha256}


def pages_path(corpus_dir: str | os.PathLike[str]) -> Path:
    """The pages.jsonl of `corpus_dir`, or a ValueError saying which of the two is missing."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise ValueError(f"local search corpus directory not found: {str(root)!r}")
    path = root / PAGES_FILE
    if not path.is_file():
        raise ValueError(f"local search corpus {str(root)!r} has no {PAGES_FILE} file")
    return path


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def stat_fingerprint(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def fingerprint(path: Path) -> FileFingerprint:
    size, mtime_ns = stat_fingerprint(path)
    return FileFingerprint(size, mtime_ns, file_sha256(path))


def _where(path: Path, line: int) -> str:
    return f"{str(path)!r} line {line}"


def _string_field(record: dict[str, Any], key: str, path: Path, line: int, non_empty: bool = False) -> str:
    if key not in record:
        raise ValueError(f"{_where(path, line)}: page has no {key!r} field")
    value = record[key]
    if not isinstance(value, str):
        raise ValueError(f"{_where(path, line)}: {key!r} must be a string, got {type(value).__name__} {value!r:.80}")
    if non_empty and not value.strip():
        raise ValueError(f"{_where(path, line)}: {key!r} must not be empty")
    return value


def _image_paths(record: dict[str, Any], root: Path, path: Path, line: int) -> tuple[str, ...]:
    images = record.get("images", [])
    if not isinstance(images, list):
        raise ValueError(f"{_where(path, line)}: 'images' must be a list of relative paths, got "
                         f"{type(images).__name__} {images!r:.80}")
    checked: list[str] = []
    for image in images:
        if not isinstance(image, str) or not image:
            raise ValueError(f"{_where(path, line)}: image paths must be non-empty strings, got {image!r:.80}")
        relative = PurePosixPath(image)
        if relative.is_absolute() or ".." in relative.parts or "\\" in image:
            raise ValueError(f"{_where(path, line)}: image path {image!r} must be relative to the corpus "
                             "directory (forward slashes, no '..')")
        file = root.joinpath(*relative.parts)
        if not file.is_file():
            raise ValueError(f"{_where(path, line)}: image file not found: {str(file)!r}")
        checked.append(relative.as_posix())
    return tuple(checked)


def read_pages(corpus_dir: str | os.PathLike[str]) -> tuple[list[CorpusPage], FileFingerprint]:
    """Every page of the corpus, validated (well-formed JSON objects with string url, non-empty and
    unique, title and text, and image paths naming existing files inside the corpus directory),
    and the fingerprint of the bytes that were parsed.

    The size and mtime are taken before reading, so a file rewritten while it is read never looks
    unchanged afterwards."""
    path = pages_path(corpus_dir)
    root = path.parent
    size, mtime_ns = stat_fingerprint(path)
    hasher = hashlib.sha256()
    pages: list[CorpusPage] = []
    first_line_of: dict[str, int] = {}
    offset = 0
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            hasher.update(raw)
            if not raw.strip():
                continue
            record = parse_json_object(raw, _where(path, line_number))
            url = _string_field(record, "url", path, line_number, non_empty=True)
            if url in first_line_of:
                raise ValueError(f"{_where(path, line_number)}: duplicate url {url!r} "
                                 f"(first on line {first_line_of[url]})")
            first_line_of[url] = line_number
            pages.append(CorpusPage(
                url=url,
                title=_string_field(record, "title", path, line_number),
                text=_string_field(record, "text", path, line_number),
                images=_image_paths(record, root, path, line_number),
                line=line_number,
                offset=start,
                end=offset,
            ))
    if not pages:
        raise ValueError(f"local search corpus {str(path)!r} holds no pages")
    return pages, FileFingerprint(size, mtime_ns, hasher.hexdigest())


def read_page_records(path: Path, spans: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """The JSON objects stored at the byte ranges [offset, end) of pages.jsonl, read on demand (one
    open for all of them: a search reads its few hits, never the whole file)."""
    records = []
    with open(path, "rb") as handle:
        for offset, end in spans:
            handle.seek(offset)
            record = json.loads(handle.read(end - offset))
            if not isinstance(record, dict):
                raise ValueError(f"{str(path)!r} at byte {offset}: expected a JSON object")
            records.append(record)
    return records
