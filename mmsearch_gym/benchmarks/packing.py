"""Packing a finished run into a leaderboard submission: one deterministic zip per run.

Why a zip of the whole run and not just its numbers: a leaderboard result must be re-derivable from
files alone, so the package carries every trajectory and the leaderboard re-plays them
(`benchmarks.validate`) instead of trusting `metrics.json`. Why deterministic: the same run directory
always packs to the same bytes (fixed timestamps and attributes, sorted members, canonical JSON,
episodes sorted by index), so a package can be pinned by its hash. The run is checked here with the
same strict rules the validator applies, so a package that packs is not refused for its format later.
"""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmsearch_gym.benchmarks.agent_card import AGENT_CARD_FILE, agent_card_problems
from mmsearch_gym.benchmarks.metrics import compute_metrics
from mmsearch_gym.benchmarks.package_json import canonical, parse_json
from mmsearch_gym.benchmarks.submission_format import (
    DEFAULT_LIMITS, EPISODES_FILE, REQUIRED_MANIFEST_FIELDS, SubmissionError, SubmissionLimits,
)
from mmsearch_gym.runs import (
    MANIFEST_FILE, METRICS_FILE, RecordsError, RecordsFile, atomic_file, encode_json, encode_record,
)

__all__ = ["pack_submission"]

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_MAX_LISTED = 10


def _load_run_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SubmissionError([f"{str(path)!r} is missing; is this a finished evaluate() run directory?"])
    try:
        value = parse_json(path.read_bytes(), repr(str(path)))
    except OSError as error:
        raise SubmissionError([f"cannot read {str(path)!r}: {error.strerror or error}"]) from None
    except ValueError as error:
        raise SubmissionError([str(error)]) from None
    if not isinstance(value, dict):
        raise SubmissionError([f"{str(path)!r} must hold a JSON object, got {type(value).__name__}"])
    return value


def _load_run_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SubmissionError([f"{str(path)!r} is missing; is this an evaluate() run directory?"])
    try:
        records = RecordsFile(path)
    except RecordsError as error:
        raise SubmissionError([str(error)]) from None
    if records.torn is not None:
        raise SubmissionError([f"{str(path)!r} line {records.torn.line} is unfinished (the run was interrupted); "
                               "resume it with evaluate() on the same directory first"])
    return records.ordered()


def _listed(values: Sequence[Any]) -> str:
    shown = ", ".join(str(value) for value in values[:_MAX_LISTED])
    return shown + (f", … ({len(values)} in all)" if len(values) > _MAX_LISTED else "")


def _check_run(manifest: dict[str, Any], records: list[dict[str, Any]], metrics: dict[str, Any],
               run: Path) -> list[str]:
    problems = [f"manifest.json in {str(run)!r} has no {key!r}" for key in REQUIRED_MANIFEST_FIELDS
                if key not in manifest]
    expected = manifest.get("episodes")
    if isinstance(expected, int) and not isinstance(expected, bool):
        indices = [record["index"] for record in records]
        missing = sorted(set(range(expected)) - set(indices))
        unknown = sorted(set(indices) - set(range(expected)))
        if missing:
            problems.append(f"the run is incomplete: {len(missing)} of {expected} episodes are missing "
                            f"(indices {_listed(missing)}); resume it with evaluate() on the same directory")
        if unknown:
            problems.append(f"episodes.jsonl holds indices outside 0..{expected - 1}: {_listed(unknown)}")
    if not problems and canonical(compute_metrics(records)) != canonical(metrics):
        problems.append(f"metrics.json in {str(run)!r} does not match episodes.jsonl (it was edited, or written by "
                        "another version); re-run evaluate() on the directory to recompute it")
    return problems


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def _write_zip_atomic(out: Path, members: Mapping[str, bytes]) -> None:
    """All members into `out`, atomically: a failure leaves the old file (or none) and no temp file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out, mode=0o644) as temp, zipfile.ZipFile(temp, "w") as archive:
        for name in sorted(members):
            archive.writestr(_zip_info(name), members[name], compress_type=zipfile.ZIP_DEFLATED,
                             compresslevel=9)


def pack_submission(run_dir: str | os.PathLike[str], out_zip: str | os.PathLike[str],
                    agent_card: Mapping[str, Any], *, limits: SubmissionLimits = DEFAULT_LIMITS) -> Path:
    """Pack a finished `evaluate()` run directory and an agent card into one deterministic zip.

    The run must be complete (every episode of the manifest recorded) and its metrics must match its
    records; the agent card is checked with `agent_card_problems`. Raises `SubmissionError` listing
    every problem; writes `out_zip` atomically and returns its path.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise SubmissionError([f"run directory {str(run)!r} does not exist or is not a directory"])
    problems = agent_card_problems(agent_card)
    if problems:
        raise SubmissionError(problems)
    manifest = _load_run_json(run / MANIFEST_FILE)
    metrics = _load_run_json(run / METRICS_FILE)
    records = _load_run_records(run / EPISODES_FILE)
    problems = _check_run(manifest, records, metrics, run)
    if problems:
        raise SubmissionError(problems)
    members = {
        AGENT_CARD_FILE: encode_json(dict(agent_card)),
        EPISODES_FILE: b"".join(encode_record(record) + b"\n" for record in records),
        MANIFEST_FILE: encode_json(manifest),
        METRICS_FILE: encode_json(metrics),
    }
    too_big = [f"{name} is {len(data)} bytes, over the {limits.member_limit(name)}-byte submission limit"
               for name, data in members.items() if len(data) > limits.member_limit(name)]
    if too_big:
        raise SubmissionError(too_big)
    out = Path(out_zip)
    _write_zip_atomic(out, members)
    return out
