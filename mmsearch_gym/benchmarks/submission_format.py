"""What a leaderboard submission package is: its members, its size limits, its error type.

Why a module of its own: the packer (`benchmarks.packing`), the safe reader (`benchmarks.submission`)
and the validator all speak about the same four members and the same limits; keeping them here lets
each of those modules hold one concept without importing the others.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from typing import Any, Sequence

from mmsearch_gym.archives import ArchiveLimits
from mmsearch_gym.benchmarks.agent_card import AGENT_CARD_FILE
from mmsearch_gym.checks import require_int
from mmsearch_gym.runs import MANIFEST_FILE, METRICS_FILE, RECORDS_FILE

EPISODES_FILE = RECORDS_FILE
SUBMISSION_MEMBERS = tuple(sorted((AGENT_CARD_FILE, EPISODES_FILE, MANIFEST_FILE, METRICS_FILE)))
REQUIRED_MANIFEST_FIELDS = ("env", "env_id", "episodes", "reward", "seed", "suite_hash", "cache_bundle_hash")

__all__ = ["DEFAULT_LIMITS", "EPISODES_FILE", "REQUIRED_MANIFEST_FIELDS", "SUBMISSION_MEMBERS", "SubmissionContents",
           "SubmissionError", "SubmissionLimits"]


class SubmissionError(ValueError):
    """A run could not be packed, or a package could not be read safely; `reasons` lists every problem."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


@dataclass(frozen=True)
class SubmissionLimits:
    """Ceilings for reading a package, checked on declared and on actually decompressed sizes.

    `max_ratio` (uncompressed / compressed) applies to members larger than `ratio_floor_bytes`:
    honest JSON compresses 5-30x, a deflate bomb about 1000x. `max_line_reasons` caps how many bad
    episode lines are listed one by one.
    """

    max_zip_bytes: int = 256 * 2**20
    max_members: int = 8
    max_central_directory_bytes: int = 64 * 2**10
    max_json_bytes: int = 4 * 2**20
    max_episodes_bytes: int = 512 * 2**20
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 2**20
    max_line_reasons: int = 20

    def __post_init__(self) -> None:  # a bad limit is the host's error, raised here, not a rejection later
        require_int("max_line_reasons", self.max_line_reasons, low=1)
        self.archive_limits()

    def member_limit(self, name: str) -> int:
        return self.max_episodes_bytes if name == EPISODES_FILE else self.max_json_bytes

    def archive_limits(self) -> ArchiveLimits:
        """The same ceilings in the shared safe-zip reader's terms (stored or deflated members only)."""
        members = tuple((name, self.member_limit(name)) for name in SUBMISSION_MEMBERS)
        return ArchiveLimits(
            max_members=self.max_members, max_member_bytes=self.max_json_bytes,
            max_total_bytes=sum(limit for _, limit in members),
            max_central_directory_bytes=self.max_central_directory_bytes,
            compression_methods=frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}), member_bytes=members,
            max_archive_bytes=self.max_zip_bytes,
            max_ratio=self.max_ratio, ratio_floor_bytes=self.ratio_floor_bytes)


DEFAULT_LIMITS = SubmissionLimits()


@dataclass(frozen=True)
class SubmissionContents:
    """A package read back: the three JSON documents and the episode lines as `(line number, value)`."""

    manifest: dict[str, Any]
    metrics: dict[str, Any]
    agent_card: dict[str, Any]
    episodes: list[tuple[int, Any]]
