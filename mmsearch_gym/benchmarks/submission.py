"""Leaderboard submission packages: the safe way to read one back (and the public names of the format).

Why the careful reader: packages come from strangers, so reading one never extracts to disk, never
trusts a member name or a declared size, and stops at fixed limits (zip bombs, path traversal, links,
oversized central directories, a second archive hidden before or after the first). The zip checks are
the shared safe-zip reader's (`mmsearch_gym.archives`); this module adds what a submission is: exactly
four members, strict JSON (`benchmarks.package_json`), one reason per bad episode line.

The format, the packer and the agent card live in their own modules (`submission_format`, `packing`,
`agent_card`); their public names are re-exported here, the import path the rest of the project uses.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from mmsearch_gym.archives import ArchiveError, open_archive, read_member
from mmsearch_gym.benchmarks.agent_card import AGENT_CARD_FILE, REQUIRED_CARD_FIELDS, agent_card_problems
from mmsearch_gym.benchmarks.package_json import canonical, parse_json
from mmsearch_gym.benchmarks.packing import pack_submission
from mmsearch_gym.benchmarks.submission_format import (
    DEFAULT_LIMITS, EPISODES_FILE, REQUIRED_MANIFEST_FIELDS, SUBMISSION_MEMBERS, SubmissionContents, SubmissionError,
    SubmissionLimits,
)
from mmsearch_gym.runs import MANIFEST_FILE, METRICS_FILE

__all__ = [
    "AGENT_CARD_FILE", "DEFAULT_LIMITS", "EPISODES_FILE", "REQUIRED_CARD_FIELDS", "REQUIRED_MANIFEST_FIELDS",
    "SUBMISSION_MEMBERS", "SubmissionContents", "SubmissionError", "SubmissionLimits", "agent_card_problems",
    "canonical", "pack_submission", "parse_json", "read_submission",
]


def _split_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    yield from enumerate(lines, 1)


def _parse_members(raw: Mapping[str, bytes], limits: SubmissionLimits) -> SubmissionContents:
    problems: list[str] = []
    documents: dict[str, dict[str, Any]] = {}
    for name in (AGENT_CARD_FILE, MANIFEST_FILE, METRICS_FILE):
        try:
            value = parse_json(raw[name], name)
        except ValueError as error:
            problems.append(str(error))
            continue
        if not isinstance(value, dict):
            problems.append(f"{name} must hold a JSON object, got {type(value).__name__}")
            continue
        documents[name] = value
    episodes: list[tuple[int, Any]] = []
    bad_lines = 0
    for number, line in _split_lines(raw[EPISODES_FILE]):
        try:
            if not line.strip():
                raise ValueError(f"{EPISODES_FILE} line {number} is empty")
            episodes.append((number, parse_json(line, f"{EPISODES_FILE} line {number}", allow_surrogates=True)))
        except ValueError as error:
            bad_lines += 1
            if bad_lines <= limits.max_line_reasons:
                problems.append(str(error))
    if bad_lines > limits.max_line_reasons:
        problems.append(f"… {bad_lines - limits.max_line_reasons} more malformed lines in {EPISODES_FILE}")
    if problems:
        raise SubmissionError(problems)
    return SubmissionContents(manifest=documents[MANIFEST_FILE], metrics=documents[METRICS_FILE],
                              agent_card=documents[AGENT_CARD_FILE], episodes=episodes)


def _name_problems(names: list[str]) -> list[str]:
    expected = ", ".join(SUBMISSION_MEMBERS)
    problems = [f"unexpected member {name!r}; a submission holds exactly {expected}"
                for name in names if name not in SUBMISSION_MEMBERS]
    missing = [name for name in SUBMISSION_MEMBERS if name not in names]
    if missing:
        problems.append(f"missing member(s) {', '.join(missing)}")
    return problems


def read_submission(zip_path: str | os.PathLike[str], limits: SubmissionLimits = DEFAULT_LIMITS
                    ) -> SubmissionContents:
    """Read a package in memory, safely: sizes, names and layout are checked before anything is
    decompressed, every member is read through a bounded stream, nothing touches the disk. Raises
    `SubmissionError` whose `reasons` name each offending member (and line, for episodes.jsonl)."""
    path = Path(zip_path)
    if not path.is_file():
        raise SubmissionError([f"submission {str(path)!r} does not exist or is not a file"])
    archive_limits = limits.archive_limits()
    try:
        with open_archive(path, archive_limits) as archive:
            infos = archive.infolist()
            problems = _name_problems([info.filename for info in infos])
            if problems:
                raise SubmissionError(problems)
            raw = {info.filename: read_member(archive, info, archive_limits) for info in infos}
    except ArchiveError as error:
        raise SubmissionError(error.reasons) from None
    return _parse_members(raw, limits)
