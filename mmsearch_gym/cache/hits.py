"""The replay hot path's two helpers: the thread's SQLite handle and the memo of parsed hits.

Why: a replayed search is one indexed SELECT plus, when the stored bytes equal those of a recent hit,
no parsing at all (perf/cache_hit.py measures it against a raw SELECT). Thumbnail bytes are
content-addressed and immutable, so they are kept with the parsed entry; thumbnails are handed out as
fresh `EncodedImage` objects that decode lazily on first access, so the memo never holds pixels.
"""

from __future__ import annotations

import threading
from typing import Any

from mmsearch_gym.cache.serialize import EntryRecord
from mmsearch_gym.search.types import SearchResults


class ConnectionHandle(threading.local):
    """This thread's handle on diskcache's SQLite connection, and the process it belongs to.

    Set by every `_read` from diskcache's own fork-aware, per-thread connection; the hot path uses it
    only while the process id still matches (a forked child goes through `_read` again)."""

    pid: int = -1
    execute: Any = None


class Hit:
    """A parsed entry kept for reuse while its stored bytes stay the same."""

    __slots__ = ("stored", "record", "images", "shared")

    def __init__(self, stored: bytes, record: EntryRecord, images: dict[str, bytes]) -> None:
        self.stored = stored
        self.record = record
        self.images = images
        # Results without thumbnails hold no lazily decoded state, so one object can be shared.
        self.shared = None if images else record.to_results(images)

    def results(self) -> SearchResults:
        return self.shared if self.shared is not None else self.record.to_results(self.images)


__all__ = ["ConnectionHandle", "Hit"]
