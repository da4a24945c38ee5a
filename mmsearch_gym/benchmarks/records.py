"""Moved: the run records and JSON helpers live in `mmsearch_gym.runs` (a ground layer that trainers
can import without importing benchmarks). This module keeps the old import path working."""

from mmsearch_gym.runs.manifest import write_json_atomic
from mmsearch_gym.runs.records import RECORDS_FILE, RecordsAppender, RecordsError, RecordsFile, encode_record

__all__ = ["RECORDS_FILE", "RecordsAppender", "RecordsError", "RecordsFile", "encode_record", "write_json_atomic"]
