"""Environment start-up cost against the size of the replayed cache, with floors measured in one run.

Why: vector envs and server sessions create many environments over one recorded cache. Replay needs
the cache's backend id; finding it by walking every key made each creation O(entries). The ids now
live in the cache's metadata, so creating an env should cost about the same at 10k and 100k entries.

What is timed (medians of interleaved rounds, the machine is noisy), for each cache size:
- floor: opening the cache alone (`SearchCache(readonly=True)`, then close);
- replay: `CachedSearchBackend.replay(cache_dir)` (opens the cache, reads the backend id), then close;
- env: `gym.make("ImageSearchVQA-v0", dataset=samples, search="replay", cache_path=cache_dir)`, then close;
- walk: what replay used to do on top of opening: read every key to collect the backend ids.
Ratios are against the floor of the same size; the target is replay/floor about 1 at every size.

Run: python perf/env_startup.py [--sizes 10000 100000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import gymnasium as gym

import mmsearch_gym  # noqa: F401 - registers the env
from mmsearch_gym.cache import CachedSearchBackend, SearchCache
from mmsearch_gym.cache.listing import scan_backend_ids
from mmsearch_gym.data.suites import resolve_dataset
from mmsearch_gym.search.types import SearchItem, SearchResults

BACKEND = "perf:startup"
TOP_K = 5


def fill(directory: str, entries: int) -> None:
    """A cache of `entries` small text entries (the size of the cache is what matters here)."""
    with SearchCache(directory) as cache, cache.transaction():
        for i in range(entries):
            results = SearchResults("text", (SearchItem(f"title {i}", f"https://example.org/{i}", f"snippet {i}"),))
            cache.put(BACKEND, "text", f"query number {i}", TOP_K, results)


def time_once(fn: Callable[[], object], samples: dict[str, list[float]], name: str) -> None:
    """Run `fn` once and add its wall time in ms to `samples[name]`."""
    start = time.perf_counter()
    fn()
    samples.setdefault(name, []).append((time.perf_counter() - start) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    dataset = list(resolve_dataset("synth-mini"))[:8]
    work = tempfile.mkdtemp(prefix="env-startup-perf-")
    print(f"{'entries':>8} {'floor ms':>9} {'replay ms':>10} {'env ms':>8} {'walk ms':>8} "
          f"{'replay/floor':>13} {'env/floor':>10} {'walk/floor':>11}")
    for size in args.sizes:
        directory = os.path.join(work, f"cache-{size}")
        started = time.perf_counter()
        fill(directory, size)
        fill_s = time.perf_counter() - started

        def floor() -> None:
            SearchCache(directory, readonly=True).close()

        def replay() -> None:
            CachedSearchBackend.replay(directory).close()

        def env() -> None:
            gym.make("ImageSearchVQA-v0", dataset=dataset, search="replay", cache_path=directory).close()

        def walk() -> None:
            with SearchCache(directory, readonly=True) as cache:
                scan_backend_ids(cache._all_keys(), directory)

        samples: dict[str, list[float]] = {}
        for fn in (floor, replay, env, walk):  # warm-up: imports, OS file cache
            fn()
        for _ in range(args.rounds):  # interleaved, so drift hits every measurement alike
            for name, fn in (("floor", floor), ("replay", replay), ("env", env), ("walk", walk)):
                time_once(fn, samples, name)
        m = {name: statistics.median(values) for name, values in samples.items()}
        print(f"{size:>8} {m['floor']:>9.2f} {m['replay']:>10.2f} {m['env']:>8.2f} {m['walk']:>8.2f} "
              f"{m['replay'] / m['floor']:>13.2f} {m['env'] / m['floor']:>10.2f} {m['walk'] / m['floor']:>11.2f}"
              f"   (filled in {fill_s:.1f} s)")


if __name__ == "__main__":
    main()
