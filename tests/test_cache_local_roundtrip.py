"""The search layer's end-to-end promise: record with the local backend → export → import into an empty
directory → strict replay gives exactly the same `SearchResults` for every key."""

from __future__ import annotations

import pytest

pytest.importorskip("bm25s")
pytest.importorskip("imagehash")

from mmsearch_gym.cache import CachedSearchBackend, SearchCache, export_bundle, import_bundle  # noqa: E402
from mmsearch_gym.data.synth import generate_questions, generate_world, write_corpus  # noqa: E402
from mmsearch_gym.search.local import LocalCorpusBackend  # noqa: E402
from mmsearch_gym.search.types import QueryImage  # noqa: E402


def test_record_export_import_replay_is_exact(tmp_path):
    world = generate_world(5, 10, n_test_entities=10)
    samples = generate_questions(world, 12, 5, "test")
    live = LocalCorpusBackend(write_corpus(world, tmp_path / "corpus"))
    queries = [step.split(":", 1)[1] for s in samples for step in s.meta["plan"] if step.startswith("text_search:")]
    queries += ["a query that matches nothing zzqx", "festival founded"]
    recorded = {}
    with SearchCache(tmp_path / "recorded") as cache:
        recorder = CachedSearchBackend(live, cache, "record")
        for sample in samples:
            image = QueryImage(sample.rgb())
            recorded[("image", image.digest)] = recorder.image_search(image, 5)
        for query in queries:
            recorded[("text", query)] = recorder.text_search(query, 5)
        export_bundle(cache, tmp_path / "bundle.zip")
    assert any(r.items for r in recorded.values())

    import_bundle(tmp_path / "bundle.zip", tmp_path / "imported")
    replay = CachedSearchBackend.replay(tmp_path / "imported")
    assert replay.backend_id == live.backend_id
    for (kind, key), expected in recorded.items():
        if kind == "image":
            image = next(QueryImage(s.rgb()) for s in samples if QueryImage(s.rgb()).digest == key)
            got = replay.image_search(image, 5)
        else:
            got = replay.text_search(key, 5)
        assert got == expected and got.source == "cache_hit"
    assert replay.stats.misses == 0 and replay.stats.live_calls == 0
