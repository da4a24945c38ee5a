"""Run directories: the append-only episode records, the run manifest and atomic file writes (a ground layer).

Why a room of its own: the evaluator writes runs, while submissions, leaderboard validation, the
judge and SFT read them. Keeping the file formats here, importing nothing of the higher layers, lets
every reader share one parser (one set of error messages) without `trainers` importing `benchmarks`.
The formats and the resume rules are described in `docs/run-directories.md`.
"""

from mmsearch_gym.runs.atomic import (
    atomic_file, replace_directory, write_bytes_atomic, write_directory_atomic, write_files_atomic,
)
from mmsearch_gym.runs.manifest import (
    MANIFEST_FILE, METRICS_FILE, RESUME_KEYS, RunMismatch, check_resume, encode_json, read_json_object,
    resume_mismatch, write_json_atomic,
)
from mmsearch_gym.runs.records import (
    RECORDS_FILE, RecordsAppender, RecordsError, RecordsFile, RunDirectoryError, TornTail, encode_record, parse_records, read_records,
)

__all__ = [
    "MANIFEST_FILE", "METRICS_FILE", "RECORDS_FILE", "RESUME_KEYS", "RecordsAppender", "RecordsError", "RecordsFile",
    "RunDirectoryError", "RunMismatch", "TornTail", "check_resume", "encode_json", "encode_record", "parse_records", "read_json_object",
    "read_records", "resume_mismatch", "write_json_atomic",
    "atomic_file", "replace_directory", "write_bytes_atomic", "write_directory_atomic", "write_files_atomic",
]
