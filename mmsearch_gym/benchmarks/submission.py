"""Leaderboard submission packages: one deterministic zip per run, and the safe way to read one back.

Why a zip of the whole run and not just its numbers: a leaderboard result must be re-derivable from
files alone (DESIGN §8), so the package carries every trajectory and the leaderboard re-plays them
(`benchmarks.validate`) instead of trusting `metrics.json`. Why deterministic: the same run directory
always packs to the same bytes (fixed timestamps and attributes, sorted members, canonical JSON,
episodes sorted by index), so a package can be pinned by its hash. Why the careful reader: packages
come from strangers, so reading one never extracts to disk, never trusts a member name or a declared
size, and stops at fixed limits (zip bombs, path traversal, links, oversized central directories).
"""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from mmsearch_gym.benchmarks.metrics import compute_metrics
from mmsearch_gym.runs import MANIFEST_FILE, METRICS_FILE, RECORDS_FILE

AGENT_CARD_FILE = "agent_card.json"
EPISODES_FILE = RECORDS_FILE
SUBMISSION_MEMBERS = tuple(sorted((AGENT_CARD_FILE, EPISODES_FILE, MANIFEST_FILE, METRICS_FILE)))
REQUIRED_CARD_FIELDS = ("model", "size", "search_budget", "contact")
REQUIRED_MANIFEST_FIELDS = ("env", "env_id", "episodes", "reward", "seed", "suite_hash", "cache_bundle_hash")

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_MAX_LISTED = 10


class SubmissionError(ValueError):
    """A run could not be packed, or a package could not be read safely; `reasons` lists every problem."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


@dataclass(frozen=True)
class SubmissionLimits:
    """Ceilings for reading a package, checked on declared and on actually decompressed sizes.

    `max_ratio` (uncompressed / compressed) applies to members larger than `ratio_floor_bytes`:
    honest JSON compresses 5-30x, a deflate bomb about 1000x.
    """

    max_zip_bytes: int = 256 * 2**20
    max_members: int = 8
    max_central_directory_bytes: int = 64 * 2**10
    max_json_bytes: int = 4 * 2**20
    max_episodes_bytes: int = 512 * 2**20
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 2**20
    max_line_reasons: int = 20

    def member_limit(self, name: str) -> int:
        return self.max_episodes_bytes if name == EPISODES_FILE else self.max_json_bytes


DEFAULT_LIMITS = SubmissionLimits()


@dataclass(frozen=True)
class SubmissionContents:
    """A package read back: the three JSON documents and the episode lines as `(line number, value)`."""

    manifest: dict[str, Any]
    metrics: dict[str, Any]
    agent_card: dict[str, Any]
    episodes: list[tuple[int, Any]]


# -- agent card -------------------------------------------------------------------------------------------

def agent_card_problems(card: Any) -> list[str]:
    """Every problem with an agent card, each naming the field and the bad value (empty: the card is fine).

    Required: `model` (name of the model), `size` (e.g. "7B", or a parameter count), `search_budget`
    (the most searches per episode the agent was configured to make) and `contact` (an e-mail address
    or an http(s) URL). Optional: `name` (the row's label; default: the run manifest's agent name).
    """
    if not isinstance(card, Mapping):
        return [f"agent card must be a JSON object, got {type(card).__name__}"]
    problems = [f"agent card field {key!r} is missing" for key in REQUIRED_CARD_FIELDS if key not in card]
    for key in ("model", "name"):
        if key in card and (not isinstance(card[key], str) or not card[key].strip() or len(card[key]) > 200):
            problems.append(f"agent card field {key!r} must be a non-empty string of at most 200 characters, "
                            f"got {card[key]!r}")
    size = card.get("size")
    if "size" in card and not ((isinstance(size, str) and size.strip() and len(size) <= 50) or (
            isinstance(size, (int, float)) and not isinstance(size, bool) and math.isfinite(size) and size > 0)):
        problems.append(f"agent card field 'size' must be a label like '7B' or a positive parameter count, "
                        f"got {size!r}")
    budget = card.get("search_budget")
    if "search_budget" in card and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        problems.append(f"agent card field 'search_budget' must be an integer >= 0 (searches per episode), "
                        f"got {budget!r}")
    contact = card.get("contact")
    if "contact" in card and not (isinstance(contact, str) and len(contact) <= 320 and (
            ("@" in contact.strip(" @")) or contact.startswith(("http://", "https://")))):
        problems.append(f"agent card field 'contact' must be an e-mail address or an http(s) URL, got {contact!r}")
    return problems


# -- packing ----------------------------------------------------------------------------------------------

def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _record_line(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical(value: Any) -> str:
    """The comparison form of a JSON value: equal values, and only equal values, give equal strings
    (so 1 and 1.0, or True and 1, are told apart)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _load_run_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SubmissionError([f"{str(path)!r} is missing; is this a finished evaluate() run directory?"])
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise SubmissionError([f"{str(path)!r} is not valid JSON: {error}"]) from None
    if not isinstance(value, dict):
        raise SubmissionError([f"{str(path)!r} must hold a JSON object, got {type(value).__name__}"])
    return value


def _load_run_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SubmissionError([f"{str(path)!r} is missing; is this an evaluate() run directory?"])
    records: dict[int, dict[str, Any]] = {}
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                record = json.loads(line)
            except (UnicodeDecodeError, ValueError) as error:
                raise SubmissionError([f"{str(path)!r} line {number} is not valid JSON ({error}); an interrupted "
                                       "run leaves a torn last line: resume it with evaluate() first"]) from None
            index = record.get("index") if isinstance(record, dict) else None
            if isinstance(index, bool) or not isinstance(index, int):
                raise SubmissionError([f"{str(path)!r} line {number} has no integer 'index'"])
            if index in records:
                raise SubmissionError([f"{str(path)!r} line {number} repeats episode {index}"])
            records[index] = record
    return [records[index] for index in sorted(records)]


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


def _listed(values: Sequence[Any]) -> str:
    shown = ", ".join(str(value) for value in values[:_MAX_LISTED])
    return shown + (f", … ({len(values)} in all)" if len(values) > _MAX_LISTED else "")


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


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
        AGENT_CARD_FILE: _json_bytes(dict(agent_card)),
        EPISODES_FILE: "".join(_record_line(record) + "\n" for record in records).encode("utf-8"),
        MANIFEST_FILE: _json_bytes(manifest),
        METRICS_FILE: _json_bytes(metrics),
    }
    too_big = [f"{name} is {len(data)} bytes, over the {limits.member_limit(name)}-byte submission limit"
               for name, data in members.items() if len(data) > limits.member_limit(name)]
    if too_big:
        raise SubmissionError(too_big)
    out = Path(out_zip)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for name in sorted(members):
            archive.writestr(_zip_info(name), members[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, out)
    return out


# -- safe reading -----------------------------------------------------------------------------------------

def _central_directory_problems(path: Path, size: int, limits: SubmissionLimits) -> list[str]:
    """Member count and central-directory size from the end record, read before `zipfile` parses
    (and allocates for) every entry of a hostile archive."""
    with path.open("rb") as handle:
        handle.seek(max(0, size - _EOCD_SIZE - 65535))
        tail = handle.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        return [f"{path.name} is not a zip file (no end-of-central-directory record)"]
    entries, directory_size = struct.unpack("<HI", tail[at + 10:at + 16])
    if entries == 0xFFFF or directory_size == 0xFFFFFFFF:
        return [f"{path.name} is a zip64 archive; submissions are small zips (pack them with pack_submission)"]
    if entries > limits.max_members:
        return [f"{path.name} has {entries} members; a submission has at most {limits.max_members} "
                f"(exactly {', '.join(SUBMISSION_MEMBERS)})"]
    if directory_size > limits.max_central_directory_bytes:
        return [f"{path.name} has a {directory_size}-byte central directory (limit "
                f"{limits.max_central_directory_bytes}): too many or oversized member entries"]
    return []


def _unsafe_name(name: str) -> str | None:
    parts = name.replace("\\", "/").split("/")
    if "\x00" in name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if any(part in ("..", ".") for part in parts):
        return "escapes its directory (path traversal)"
    return None


def _member_problems(infos: Sequence[zipfile.ZipInfo], limits: SubmissionLimits) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        unsafe = _unsafe_name(name)
        mode = info.external_attr >> 16
        if unsafe:
            problems.append(f"member {name!r} {unsafe}")
            continue
        if stat.S_ISLNK(mode):
            problems.append(f"member {name!r} is a symbolic link")
            continue
        if name in seen:
            problems.append(f"member {name!r} appears more than once")
            continue
        seen.add(name)
        if name not in SUBMISSION_MEMBERS:
            problems.append(f"unexpected member {name!r}; a submission holds exactly {', '.join(SUBMISSION_MEMBERS)}")
            continue
        if info.flag_bits & 0x1:
            problems.append(f"member {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problems.append(f"member {name!r} uses compression method {info.compress_type}; use stored or deflated")
        limit = limits.member_limit(name)
        if info.file_size > limit:
            problems.append(f"member {name!r} declares {info.file_size} uncompressed bytes (limit {limit})")
        elif (info.file_size > limits.ratio_floor_bytes
              and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
            problems.append(f"member {name!r} declares a compression ratio of "
                            f"{info.file_size / max(info.compress_size, 1):.0f}:1 (limit {limits.max_ratio:.0f}:1): "
                            "a zip bomb?")
    missing = [name for name in SUBMISSION_MEMBERS if name not in seen]
    if missing:
        problems.append(f"missing member(s) {', '.join(missing)}")
    return problems


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: SubmissionLimits) -> bytes:
    """At most limit+1 decompressed bytes, whatever the headers claim; CRC checked by `zipfile`."""
    name, limit = info.filename, limits.member_limit(info.filename)
    try:
        with archive.open(info) as member:
            data = member.read(limit + 1)
            if len(data) <= limit:
                member.read(1)  # reach the end so that zipfile checks the CRC
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError) as error:
        raise SubmissionError([f"member {name!r} cannot be read: {error}"]) from None
    if len(data) > limit:
        raise SubmissionError([f"member {name!r} decompresses to more than {limit} bytes: a zip bomb?"])
    if len(data) != info.file_size:
        raise SubmissionError([f"member {name!r} holds {len(data)} bytes but declares {info.file_size}"])
    if len(data) > limits.ratio_floor_bytes and len(data) > limits.max_ratio * max(info.compress_size, 1):
        raise SubmissionError([f"member {name!r} has a compression ratio over {limits.max_ratio:.0f}:1: a zip bomb?"])
    return data


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def parse_json(data: bytes, where: str) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity); a ValueError names `where` and the position."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not UTF-8 ({error})") from None
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply") from None
    except ValueError as error:
        raise ValueError(f"{where} is not valid JSON: {error}") from None


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
            episodes.append((number, parse_json(line, f"{EPISODES_FILE} line {number}")))
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


def read_submission(zip_path: str | os.PathLike[str], limits: SubmissionLimits = DEFAULT_LIMITS
                    ) -> SubmissionContents:
    """Read a package in memory, safely: sizes and names are checked before anything is decompressed,
    every member is read through a bounded stream, nothing touches the disk. Raises `SubmissionError`
    whose `reasons` name each offending member (and line, for episodes.jsonl)."""
    path = Path(zip_path)
    if not path.is_file():
        raise SubmissionError([f"submission {str(path)!r} does not exist or is not a file"])
    size = path.stat().st_size
    if size > limits.max_zip_bytes:
        raise SubmissionError([f"{path.name} is {size} bytes (limit {limits.max_zip_bytes})"])
    problems = _central_directory_problems(path, size, limits)
    if problems:
        raise SubmissionError(problems)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as error:
        raise SubmissionError([f"{path.name} is not a readable zip: {error}"]) from None
    with archive:
        infos = archive.infolist()
        problems = _member_problems(infos, limits)
        if problems:
            raise SubmissionError(problems)
        raw = {info.filename: _read_bounded(archive, info, limits) for info in infos}
    return _parse_members(raw, limits)


__all__ = [
    "AGENT_CARD_FILE", "DEFAULT_LIMITS", "EPISODES_FILE", "REQUIRED_CARD_FIELDS", "SUBMISSION_MEMBERS",
    "SubmissionContents", "SubmissionError", "SubmissionLimits", "agent_card_problems", "canonical",
    "pack_submission", "parse_json", "read_submission",
]
