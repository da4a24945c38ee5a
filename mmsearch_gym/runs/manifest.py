"""The run manifest (`manifest.json`: what was run) and the rule for resuming a run directory.

Why pin fields: a run directory is resumed by playing only its missing episodes, so the episodes
already recorded must come from the same experiment. Every field in `RESUME_KEYS` changes what an
episode records (the samples, the search mode and results, the reward, the env limits, the seeds, the
agent); if any differs, mixing the two runs would give metrics of no experiment at all, so resuming
is refused with the field named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from mmsearch_gym.runs.atomic import write_bytes_atomic
from mmsearch_gym.runs.records import RunDirectoryError

MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
# Manifest fields that must be equal for a run directory to be resumed.
RESUME_KEYS = ("suite_hash", "search_mode", "search_backend", "cache_bundle_hash", "reward", "env", "seed", "agent")
_SHOWN_CHARS = 120


class RunMismatch(RunDirectoryError):
    """A run directory holds another run than the one asked for (the message names the field)."""


def encode_json(value: Any) -> bytes:
    """Stable JSON bytes (sorted keys, 2-space indent, final newline): equal values give equal bytes.
    Text UTF-8 cannot carry (lone surrogates) is written as JSON escapes instead of failing."""
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return text.encode("utf-8", "backslashreplace")


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> None:
    """Write `value` as `encode_json` does, atomically: a crash leaves the old file or the new one,
    never a half-written one, and a failure leaves no temporary file behind."""
    write_bytes_atomic(path, encode_json(value))  # encoding fails (if it fails) before any file is touched


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object in `path`, or a `RunDirectoryError` naming the file and what is wrong with it."""
    try:
        value = json.loads(Path(path).read_bytes())
    except OSError as error:
        raise RunDirectoryError(f"cannot read {str(path)!r}: {error.strerror or error}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise RunDirectoryError(f"{str(path)!r} is not valid JSON ({error}); delete it or use another run "
                                "directory") from None
    if not isinstance(value, dict):
        raise RunDirectoryError(f"{str(path)!r} must hold a JSON object, got {type(value).__name__}")
    return value


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, default=str)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"


def _first_difference(key: str, before: Any, now: Any) -> tuple[str, Any, Any] | None:
    """The dotted path of the first differing field (descending into objects), with both values."""
    if isinstance(before, Mapping) and isinstance(now, Mapping):
        for sub in sorted(set(before) | set(now), key=str):
            found = _first_difference(f"{key}.{sub}", before.get(sub), now.get(sub))
            if found:
                return found
        return None
    if json.dumps(before, sort_keys=True, default=str) != json.dumps(now, sort_keys=True, default=str):
        return key, before, now
    return None


def resume_mismatch(previous: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
    """Why `current` cannot continue the run of `previous` (the first differing pinned field), or None."""
    for key in RESUME_KEYS:
        found = _first_difference(key, previous.get(key), current.get(key))
        if found:
            where, before, now = found
            recorded = "not recorded" if before is None and key not in previous else _short(before)
            return f"{where} was {recorded}, now {_short(now)}"
    return None


def check_resume(out_dir: str | os.PathLike[str], manifest: Mapping[str, Any]) -> None:
    """Raise `RunMismatch` if `out_dir` already holds a run whose pinned fields differ from `manifest`."""
    path = Path(out_dir) / MANIFEST_FILE
    if not path.exists():
        return
    problem = resume_mismatch(read_json_object(path), manifest)
    if problem:
        raise RunMismatch(
            f"{out_dir} holds a different run ({problem}); its episodes cannot be mixed with this one: resume "
            "with the same settings, or use another --out directory (or delete this one)")
