"""CachedSearchBackend modes, CacheMiss messages, and `search=`/`cache_path=` resolution for the env."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmsearch_gym.cache import CACHE_MODES, CachedSearchBackend, CacheMiss, SearchCache, export_bundle
from mmsearch_gym.envs.search_config import resolve_search
from mmsearch_gym.search import (
    QueryImage, SearchBackend, SearchItem, SearchResults, StaticSearchBackend, image_digest,
)

TOP_K = 5


def _world() -> tuple[np.ndarray, StaticSearchBackend]:
    image = np.zeros((10, 10, 3), np.uint8)
    image[::2] = 200
    backend = StaticSearchBackend(
        images=[(image, SearchResults("image", (SearchItem("Emblem", "https://e.org/emblem"),)))],
        texts={"Red Banner Society": SearchResults("text", (SearchItem("History", "https://e.org/h", "1887"),))},
        default_text=SearchResults.failed("text", "no such page"),
    )
    return image, backend


@pytest.fixture()
def world():
    return _world()


def test_modes_are_the_documented_ones() -> None:
    assert CACHE_MODES == ("live", "record", "replay", "replay_or_empty")


def test_record_then_replay_returns_equal_results(world, tmp_path: Path) -> None:
    image, live = world
    recorder = CachedSearchBackend(live, tmp_path / "c", mode="record")
    assert isinstance(recorder, SearchBackend) and recorder.backend_id == live.backend_id
    recorded_text = recorder.text_search("Red Banner Society", TOP_K)
    recorded_image = recorder.image_search(QueryImage(image), TOP_K)
    assert recorded_text.source == "static"  # a miss is answered by the live backend
    again = recorder.text_search("  red banner SOCIETY", TOP_K)
    assert again == recorded_text and again.source == "cache_hit"
    assert recorder.stats.as_dict() == {"hits": 1, "misses": 2, "live_calls": 2, "stored": 2, "not_stored": 0,
                                        "already_stored": 0}
    recorder.close()

    replay = CachedSearchBackend.replay(tmp_path / "c")
    assert replay.backend_id == live.backend_id
    text = replay.text_search("Red Banner Society", TOP_K)
    picture = replay.image_search(QueryImage(image), TOP_K)
    assert (text, picture) == (recorded_text, recorded_image)
    assert text.source == picture.source == "cache_hit"
    assert replay.stats.hits == 2 and replay.stats.live_calls == 0


def test_record_does_not_store_failed_searches(world, tmp_path: Path) -> None:
    _, live = world
    with SearchCache(tmp_path / "c") as cache:
        recorder = CachedSearchBackend(live, cache, mode="record")
        failed = recorder.text_search("unknown query", TOP_K)
        assert failed.error == "no such page"
        assert recorder.stats.not_stored == 1 and len(cache) == 0
        recorder.text_search("unknown query", TOP_K)
        assert recorder.stats.live_calls == 2  # retried, not replayed


def test_strict_replay_miss_names_key_query_backend_and_how_to_record(world, tmp_path: Path) -> None:
    image, live = world
    CachedSearchBackend(live, tmp_path / "c", mode="record").text_search("Red Banner Society", TOP_K)
    replay = CachedSearchBackend.replay(tmp_path / "c")
    with pytest.raises(CacheMiss) as raised:
        replay.text_search("Who founded it?", TOP_K)
    miss = raised.value
    assert isinstance(miss, LookupError)
    message = str(miss)
    for part in (miss.key, "'Who founded it?'", live.backend_id, "mmsearch-gym cache record", "top_k 5",
                 str(tmp_path / "c")):
        assert part in message
    assert (miss.kind, miss.query, miss.top_k, miss.backend_id) == ("text", "Who founded it?", 5, live.backend_id)
    with pytest.raises(CacheMiss, match=image_digest(image)) as raised:
        replay.image_search(QueryImage(image), TOP_K)
    assert raised.value.image_digest == image_digest(image) and raised.value.query is None
    assert replay.stats.misses == 2


def test_replay_or_empty_returns_an_empty_marked_result(world, tmp_path: Path) -> None:
    image, live = world
    CachedSearchBackend(live, tmp_path / "c", mode="record").text_search("Red Banner Society", TOP_K)
    replay = CachedSearchBackend.replay(tmp_path / "c", mode="replay_or_empty")
    empty = replay.image_search(QueryImage(image), TOP_K)
    assert empty == SearchResults("image") and empty.source == "cache_miss_empty"
    assert replay.text_search("Red Banner Society", TOP_K).source == "cache_hit"
    assert (replay.stats.hits, replay.stats.misses) == (1, 1)


def test_live_mode_passes_through_without_a_cache(world) -> None:
    _, live = world
    wrapper = CachedSearchBackend(live, None, mode="live")
    assert wrapper.text_search("Red Banner Society", TOP_K) == live.text_search("Red Banner Society", TOP_K)
    assert wrapper.stats.live_calls == 1


def test_replay_picks_the_only_backend_id_or_asks(world, tmp_path: Path) -> None:
    _, live = world
    with SearchCache(tmp_path / "empty"):
        pass
    with pytest.raises(ValueError, match="holds no entries"):
        CachedSearchBackend.replay(tmp_path / "empty")
    with SearchCache(tmp_path / "c") as cache:
        cache.put("backend-a", "text", "q", TOP_K, SearchResults("text"))
        cache.put("backend-b", "text", "q", TOP_K, SearchResults("text"))
    with pytest.raises(ValueError, match=r"2 backend ids \['backend-a', 'backend-b'\]; pass backend_id="):
        CachedSearchBackend.replay(tmp_path / "c")
    assert CachedSearchBackend.replay(tmp_path / "c", "backend-b").text_search("q", TOP_K).source == "cache_hit"
    with pytest.raises(FileNotFoundError, match="no search cache"):
        CachedSearchBackend.replay(tmp_path / "missing")


def test_replay_from_a_bundle_file(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSEARCH_GYM_HOME", str(tmp_path / "home"))
    _, live = world
    recorder = CachedSearchBackend(live, tmp_path / "c", mode="record")
    recorded = recorder.text_search("Red Banner Society", TOP_K)
    export_bundle(recorder.cache, tmp_path / "b.zip")
    replay = CachedSearchBackend.replay(tmp_path / "b.zip")
    assert replay.text_search("Red Banner Society", TOP_K) == recorded
    assert replay.cache.readonly and str(tmp_path / "home") in replay.cache.directory
    with pytest.raises(CacheMiss, match="b.zip"):
        replay.text_search("other", TOP_K)
    with pytest.raises(ValueError, match="a bundle is read-only"):
        CachedSearchBackend(live, tmp_path / "b.zip", mode="record")


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "replayy"}, "mode must be one of"),
    ({"backend": None, "mode": "record"}, "mode 'record' needs a live backend"),
    ({"cache": None, "mode": "replay"}, "mode 'replay' needs a cache"),
    ({"backend_id": "something-else"}, "backend_id 'something-else' differs"),
    ({"backend": object()}, "backend must be a SearchBackend"),
    ({"backend": None, "mode": "replay"}, "needs backend_id="),
])
def test_constructor_errors_name_the_bad_value(world, tmp_path: Path, kwargs: dict, message: str) -> None:
    _, live = world
    arguments = {"backend": live, "cache": tmp_path / "c", "mode": "record", **kwargs}
    backend = arguments.pop("backend")
    cache = arguments.pop("cache")
    with pytest.raises(ValueError, match=message):
        CachedSearchBackend(backend, cache, **arguments)


# -- the environment's search= / cache_path= ------------------------------------------------------------

def test_resolve_search_modes(world, tmp_path: Path) -> None:
    _, live = world
    CachedSearchBackend(live, tmp_path / "c", mode="record").text_search("Red Banner Society", TOP_K)
    assert resolve_search(live, None) is live
    strict = resolve_search("replay", str(tmp_path / "c"))
    assert isinstance(strict, CachedSearchBackend) and strict.mode == "replay"
    assert resolve_search("replay_or_empty", str(tmp_path / "c")).mode == "replay_or_empty"
    assert resolve_search(None, str(tmp_path / "c")).mode == "replay"
    with pytest.raises(ValueError, match=r"search='record' needs a live backend.*CachedSearchBackend"):
        resolve_search("record", str(tmp_path / "c"))
    with pytest.raises(ValueError, match="search='live' needs a live backend"):
        resolve_search("live", None)
    with pytest.raises(ValueError, match="unknown search mode 'replya'"):
        resolve_search("replya", str(tmp_path / "c"))
    with pytest.raises(ValueError, match="search='replay' needs cache_path="):
        resolve_search("replay", None)
    with pytest.raises(ValueError, match="cache_path=.* is only used with search='replay'"):
        resolve_search(live, str(tmp_path / "c"))
    default = tmp_path / "c"
    assert resolve_search(None, None, default).mode == "replay"  # a suite's bundled cache is the default
    assert resolve_search("replay_or_empty", None, default).mode == "replay_or_empty"
    with pytest.raises(ValueError, match="no search backend"):
        resolve_search(None, None)


def test_env_counts_replay_hits_and_empty_misses(tiny_world, tmp_path: Path) -> None:
    gym = pytest.importorskip("gymnasium")
    import mmsearch_gym  # noqa: F401 - registers the env

    samples, live = tiny_world
    recorder = CachedSearchBackend(live, tmp_path / "c", mode="record")
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=recorder)
    env.reset(seed=0, options={"index": 0})
    env.step("<reason>r</reason><search><img></search>")
    env.close()
    assert recorder.stats.stored == 1

    env = gym.make("ImageSearchVQA-v0", dataset=samples, search="replay_or_empty", cache_path=str(tmp_path / "c"))
    env.reset(seed=0, options={"index": 0})
    _, _, _, _, info = env.step("<reason>r</reason><search><img></search>")
    _, _, _, _, info = env.step("<reason>r</reason><text_search>Red Banner Society founded</text_search>")
    assert info["cache_hits"] == 1 and info["cache_misses"] == 1
    env.close()
