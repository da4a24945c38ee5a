"""Several processes recording into one cache directory at once (as vector envs and eval workers do)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

from mmsearch_gym.cache import CachedSearchBackend, SearchCache
from mmsearch_gym.search import EncodedImage, QueryImage, SearchItem, SearchResults, StaticSearchBackend

WORKERS = 4
TOP_K = 3


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (10, 10, 3), dtype=np.uint8)


def _backend() -> StaticSearchBackend:
    """The same deterministic world in every process (same backend id)."""
    thumbs = [EncodedImage.from_array(_image(100 + i)) for i in range(5)]
    return StaticSearchBackend(
        images=[(_image(i), SearchResults("image", tuple(
            SearchItem(f"match {i}.{j}", f"https://e.org/{i}/{j}", "", thumbs[(i + j) % 5]) for j in range(3))))
            for i in range(12)],
        texts={f"query {i}": SearchResults("text", tuple(
            SearchItem(f"page {i}.{j}", f"https://e.org/q{i}/{j}", f"snippet {i} {j} " * 20) for j in range(4)))
            for i in range(40)},
    )


def _work(worker: int) -> tuple[list[str], list[int]]:
    """Worker w: 16 queries and 6 images, overlapping with its neighbours, in a worker-specific order."""
    queries = [f"query {(worker * 8 + i) % 40}" for i in range(16)]
    images = [(worker * 3 + i) % 12 for i in range(6)]
    rng = np.random.default_rng(worker)
    return [queries[i] for i in rng.permutation(len(queries))], [images[i] for i in rng.permutation(len(images))]


def _record(directory: str, worker: int, barrier, results) -> None:  # runs in a spawned process
    live = _backend()
    queries, images = _work(worker)
    with SearchCache(directory) as cache:
        recorder = CachedSearchBackend(live, cache, mode="record")
        barrier.wait(timeout=60)
        for round_ in range(2):  # the second round must be all hits
            for query in queries:
                recorder.text_search(query.upper() if round_ else query, TOP_K)
            for seed in images:
                recorder.image_search(QueryImage(_image(seed)), TOP_K)
        results.put((worker, recorder.stats.as_dict()))


def test_four_processes_record_into_one_directory(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    directory = str(tmp_path / "shared")
    processes = [context.Process(target=_record, args=(directory, w, barrier, results)) for w in range(WORKERS)]
    for process in processes:
        process.start()
    stats = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    for worker, counts in stats.items():
        queries, images = _work(worker)
        assert counts["hits"] >= len(queries) + len(images)  # every second-round search hit
        assert counts["live_calls"] == counts["stored"] + counts["already_stored"] and counts["not_stored"] == 0

    live = _backend()
    expected_queries = sorted({q for w in range(WORKERS) for q in _work(w)[0]})
    expected_images = sorted({s for w in range(WORKERS) for s in _work(w)[1]})
    with SearchCache(directory) as cache:
        assert len(cache) == len(expected_queries) + len(expected_images)
        assert cache.stats().images == 5
        for query in expected_queries:
            assert cache.get(live.backend_id, "text", query, TOP_K) == live.text_search(query, TOP_K)
        for seed in expected_images:
            hit = cache.get(live.backend_id, "image", _image(seed), TOP_K)
            assert hit == live.image_search(QueryImage(_image(seed)), TOP_K)
            assert all(item.thumbnail.pixels.shape == (10, 10, 3) for item in hit.items)
        assert sum(1 for _ in cache.entries()) == len(cache)  # every entry decodes and checks out


class _Drifting:
    """A live backend whose answers differ per process (as live search results drift between calls)."""

    backend_id = "drifting"

    def __init__(self, worker: int) -> None:
        self.worker = worker

    def text_search(self, query: str, top_k: int) -> SearchResults:
        return SearchResults("text", (SearchItem(f"{query} as seen by worker {self.worker}", "https://e.org", ""),))

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults:
        thumb = EncodedImage.from_array(_image(1000 + self.worker))
        return SearchResults("image", (SearchItem(f"image as seen by worker {self.worker}", "u", "", thumb),))


DRIFT_QUERIES = [f"query {i}" for i in range(60)]
DRIFT_IMAGES = list(range(8))


def _record_drifting(directory: str, worker: int, barrier, results) -> None:  # runs in a spawned process
    with SearchCache(directory) as cache:
        recorder = CachedSearchBackend(_Drifting(worker), cache, mode="record")
        barrier.wait(timeout=60)
        seen = {query: recorder.text_search(query, TOP_K).items for query in DRIFT_QUERIES}
        seen.update({f"image {seed}": recorder.image_search(QueryImage(_image(seed)), TOP_K).items
                     for seed in DRIFT_IMAGES})
        results.put((worker, {name: [(item.title, item.thumbnail) for item in items]
                              for name, items in seen.items()}))


def test_concurrent_recorders_all_get_what_stays_in_the_cache(tmp_path: Path) -> None:
    """First write wins and every writer gets the stored value (last-writer-wins handed out results that
    differed from the cache, so those runs did not replay)."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    directory = str(tmp_path / "shared")
    processes = [context.Process(target=_record_drifting, args=(directory, w, barrier, results))
                 for w in range(WORKERS)]
    for process in processes:
        process.start()
    seen = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    with SearchCache(directory) as cache:
        final = {query: [(item.title, item.thumbnail) for item in cache.get("drifting", "text", query, TOP_K).items]
                 for query in DRIFT_QUERIES}
        final.update({f"image {seed}": [(item.title, item.thumbnail)
                                        for item in cache.get("drifting", "image", _image(seed), TOP_K).items]
                      for seed in DRIFT_IMAGES})
        assert cache.backend_ids() == ["drifting"]
    for worker in range(WORKERS):
        differing = [name for name in final if seen[worker][name] != final[name]]
        assert differing == [], f"worker {worker} went on with {len(differing)} results the cache does not hold"
