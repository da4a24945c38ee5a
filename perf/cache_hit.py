"""Cost of a search cache hit against its floors, measured in one run (no asserts).

Why: a hit is on the path of every replayed search step, so it should cost little more than reading
the bytes from SQLite (target <= 1.3x for a text entry) and, with thumbnails, little more than reading
plus decoding them (target <= 1.2x). Floors and the payload shape follow
docs/measured-floors.md: ~2.8 KB of JSON and five ~6 KB JPEG thumbnails. Medians of
interleaved rounds, since the machine is noisy.

Run: python perf/cache_hit.py [--rounds 31] [--per-round 100] [--fillers 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from typing import Callable

import diskcache
import numpy as np
from PIL import Image

from mmsearch_gym.cache import SearchCache
from mmsearch_gym.cache.keys import cached_query_digest, entry_key, image_blob_key
from mmsearch_gym.search.types import EncodedImage, SearchItem, SearchResults

BACKEND = "perf:backend"
TOP_K = 5


def _thumbnail(seed: int, target: int = 6000) -> bytes:
    """A natural-ish JPEG of about `target` bytes (smooth gradient plus noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:96, 0:128]
    base = np.stack([x * 2, y * 2, (x + y)], axis=2).astype(np.float64)
    best = b""
    for sigma in (4, 8, 12, 16, 24, 32, 48):
        pixels = np.clip(base + rng.normal(0, sigma, base.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
        best = buffer.getvalue()
        if len(best) >= target:
            break
    return best


def _results(kind: str, thumbnails: list[bytes] | None, seed: int) -> SearchResults:
    items = []
    for i in range(5):
        snippet = f"Result {seed}-{i}: " + " ".join(f"word{(seed * 7 + i * 13 + j) % 997}" for j in range(60))
        items.append(SearchItem(f"Page title {seed} {i}", f"https://example.org/{seed}/{i}", snippet,
                                EncodedImage(thumbnails[i]) if thumbnails else None))
    return SearchResults(kind, tuple(items))  # type: ignore[arg-type]


def _median_us(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--per-round", type=int, default=100)
    parser.add_argument("--fillers", type=int, default=2000, help="other entries in the cache")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="cache-hit-perf-")
    cache_dir = os.path.join(work, "cache")
    with SearchCache(cache_dir) as cache:
        for i in range(args.fillers):
            cache.put(BACKEND, "text", f"filler query {i}", TOP_K, _results("text", None, i))
        query = "Who designed the Eiffel Tower?"
        cache.put(BACKEND, "text", query, TOP_K, _results("text", None, 10**6))
        thumbnails = [_thumbnail(s) for s in range(5)]
        digest = "ab" * 32
        cache.put(BACKEND, "image", digest, TOP_K, _results("image", thumbnails, 10**6 + 1))
    text_key = entry_key(BACKEND, "text", cached_query_digest(query), TOP_K)
    image_key = entry_key(BACKEND, "image", digest, TOP_K)

    warm = SearchCache(cache_dir, create=False)
    cold = SearchCache(cache_dir, create=False, memo_entries=0)
    plain = diskcache.Cache(cache_dir)  # public diskcache get, for reference (bytes values: no pickle)
    raw = sqlite3.connect(os.path.join(cache_dir, "cache.db"), isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    select = "SELECT value FROM Cache WHERE key = ? AND raw = 1"
    text_bytes = raw.execute(select, (text_key,)).fetchone()[0]
    image_entry_bytes = raw.execute(select, (image_key,)).fetchone()[0]
    for sha in {hashlib.sha256(t).hexdigest() for t in thumbnails}:
        assert raw.execute(select, (image_blob_key(sha),)).fetchone() is not None

    # Floor for the image path: the same payload as one BLOB in a plain WAL SQLite table, then decode.
    floor_db = sqlite3.connect(os.path.join(work, "floor.db"), isolation_level=None)
    floor_db.execute("PRAGMA journal_mode=WAL")
    floor_db.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB)")
    blob = image_entry_bytes + b"".join(thumbnails)
    bounds = np.cumsum([len(image_entry_bytes)] + [len(t) for t in thumbnails])
    floor_db.execute("INSERT INTO kv VALUES (?, ?)", ("image", blob))

    def floor_image() -> None:
        data = floor_db.execute("SELECT value FROM kv WHERE key = ?", ("image",)).fetchone()[0]
        for start, end in zip(bounds[:-1], bounds[1:]):
            np.asarray(Image.open(io.BytesIO(data[start:end])).convert("RGB"))

    def hit_image(store: SearchCache) -> Callable[[], None]:
        def run() -> None:
            results = store.get(BACKEND, "image", digest, TOP_K)
            for item in results.items:  # type: ignore[union-attr]
                item.thumbnail.pixels  # type: ignore[union-attr]  # noqa: B018 - decoding is part of the hit
        return run

    assert warm.get(BACKEND, "text", query, TOP_K) == cold.get(BACKEND, "text", query, TOP_K)
    paths: dict[str, Callable[[], object]] = {
        "text: raw sqlite3 SELECT (floor)": lambda: raw.execute(select, (text_key,)).fetchone(),
        "text: SearchCache.get": lambda: warm.get(BACKEND, "text", query, TOP_K),
        "text: SearchCache.get, memo off (first hit)": lambda: cold.get(BACKEND, "text", query, TOP_K),
        "text: diskcache.Cache.get (reference)": lambda: plain.get(text_key),
        "image: raw SELECT + decode 5 (floor)": floor_image,
        "image: SearchCache.get + decode 5": hit_image(warm),
        "image: SearchCache.get + decode 5, memo off (first hit)": hit_image(cold),
    }
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, fn in paths.items():
            samples[name].append(_median_us(fn, args.per_round if name.startswith("text") else args.per_round // 10))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    floors = {"text": medians["text: raw sqlite3 SELECT (floor)"], "image": medians["image: raw SELECT + decode 5 (floor)"]}
    targets = {"text": 1.3, "image": 1.2}

    print(f"payload: text entry {len(text_bytes)} B stored; image entry {len(image_entry_bytes)} B + thumbnails "
          f"{[len(t) for t in thumbnails]} B; {args.fillers} other entries; python {sys.version.split()[0]}")
    print(f"{'path':<58} {'median':>11} {'x floor':>8}  target")
    for name, value in medians.items():
        kind = name.split(":")[0]
        ratio = value / floors[kind]
        target = "" if "floor" in name or "reference" in name or "first hit" in name else f"<= {targets[kind]}x"
        print(f"{name:<58} {value:>8.1f} us {ratio:>7.2f}x  {target}")
    print("memo: a repeated hit reuses the parsed entry when its stored bytes are unchanged (the bytes are "
          "still read every time); 'first hit' rows parse and verify the entry and its thumbnails.")
    for store in (warm, cold):
        store.close()
    plain.close()


if __name__ == "__main__":
    main()
