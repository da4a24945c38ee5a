"""Helpers shared by the benchmark loaders, re-exported from the modules that hold them.

Kept so that `from mmsearch_gym.data.loaders.common import ...` keeps working; new code imports from
the module named for the concept:

- `errors`: `LoaderError` and `RowContext` (errors that name file, row and column);
- `rows`: finding data files and streaming parquet / JSON / JSONL rows;
- `cells`: text and list-of-text cells;
- `image_cells`: image structs, bytes, base64 text and paths (checked, never decoded);
- `building`: building samples row by row, stable ids, duplicate-free collection.
"""

from __future__ import annotations

from mmsearch_gym.data.loaders.building import (
    RowSamples, build_samples, collect, iter_table_samples, make_sample, stable_id,
)
from mmsearch_gym.data.loaders.cells import as_text, as_text_list
from mmsearch_gym.data.loaders.errors import EXCERPT_CHARS, LoaderError, RowContext, excerpt
from mmsearch_gym.data.loaders.image_cells import (
    IMAGE_EXTENSIONS, check_image_bytes, decode_base64, find_image_by_id, image_from_struct, image_from_text,
    looks_like_base64_image, resolve_image_path,
)
from mmsearch_gym.data.loaders.rows import (
    PARQUET_BATCH_ROWS, data_files, existing_file, iter_json_rows, iter_parquet_rows, iter_table_rows,
    parquet_columns,
)

__all__ = [
    "EXCERPT_CHARS", "IMAGE_EXTENSIONS", "PARQUET_BATCH_ROWS", "LoaderError", "RowContext", "RowSamples",
    "as_text", "as_text_list", "build_samples", "check_image_bytes", "collect", "data_files", "decode_base64",
    "excerpt", "existing_file", "find_image_by_id", "image_from_struct", "image_from_text", "iter_json_rows",
    "iter_parquet_rows", "iter_table_rows", "iter_table_samples", "looks_like_base64_image", "make_sample",
    "parquet_columns", "resolve_image_path", "stable_id",
]
