"""Importers of search caches recorded by other projects into verified bundles (DESIGN §1: they live
in `cache/`, which may use `search/`, never the other way round).

- `mmsearch_r1`: MMSearch-R1's released FVQA image-search pickles, loaded by `safe_pickle`
  (a restricted unpickler that rebuilds Pillow images from raw pixels and runs no code).
"""

from mmsearch_gym.cache.importers.mmsearch_r1 import (
    BACKEND_ID,
    ImportReport,
    import_mmsearch_r1,
    parse_release,
    question_images_by_data_id,
)
from mmsearch_gym.cache.importers.safe_pickle import (
    MalformedPickle,
    PickleLimits,
    PickleRefused,
    UnsafePickle,
    safe_load,
    safe_loads,
)

__all__ = [
    "BACKEND_ID", "ImportReport", "MalformedPickle", "PickleLimits", "PickleRefused", "UnsafePickle",
    "import_mmsearch_r1", "parse_release", "question_images_by_data_id", "safe_load", "safe_loads",
]
