"""SearchCache: content-addressed keys, round trips, listing, corruption detection, no pickle."""

from __future__ import annotations

import hashlib
import io
import pickle
import sqlite3
from pathlib import Path

import diskcache
import numpy as np
import pytest
from PIL import Image

from mmsearch_gym.cache import CorruptCacheEntry, SearchCache
from mmsearch_gym.cache.keys import image_blob_key, parse_entry_key
from mmsearch_gym.search import EncodedImage, QueryImage, SearchItem, SearchResults, image_digest, query_digest

BACKEND = "static:test"


def _pixels(seed: int = 0, shape: tuple[int, int] = (12, 16)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _thumb(seed: int) -> EncodedImage:
    return EncodedImage.from_array(_pixels(seed, (8, 8)))


def image_results(seeds: tuple[int, ...] = (1, 2)) -> SearchResults:
    return SearchResults("image", tuple(SearchItem(f"title {s}", f"https://e.org/{s}", "", _thumb(s)) for s in seeds))


def text_results(tag: str = "a") -> SearchResults:
    return SearchResults("text", (SearchItem(f"T {tag}", f"https://e.org/{tag}", f"snippet {tag} ✓"),
                                  SearchItem("Two", "https://e.org/2", "more")))


@pytest.fixture()
def cache(tmp_path: Path):
    with SearchCache(tmp_path / "cache") as opened:
        yield opened


def test_png_pil_array_path_and_digest_give_the_same_key(cache: SearchCache, tmp_path: Path) -> None:
    pixels = _pixels()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    (tmp_path / "q.png").write_bytes(buffer.getvalue())
    forms = [pixels, Image.fromarray(pixels), buffer.getvalue(), QueryImage(pixels), tmp_path / "q.png",
             image_digest(pixels)]
    keys = {cache.key_for(BACKEND, "image", form, 5) for form in forms}
    assert keys == {f"v1|{BACKEND}|5|image|{image_digest(pixels)}"}
    assert cache.key_for(BACKEND, "image", _pixels(1), 5) not in keys
    cache.put(BACKEND, "image", buffer.getvalue(), 5, image_results())
    assert cache.get(BACKEND, "image", Image.fromarray(pixels), 5) == image_results()


def test_text_keys_normalise_spacing_case_and_compatibility_characters(cache: SearchCache) -> None:
    same = ["Eiffel Tower height", "  eiffel   TOWER\theight ", "ＥＩＦＦＥＬ tower height"]
    keys = {cache.key_for(BACKEND, "text", query, 5) for query in same}
    assert keys == {f"v1|{BACKEND}|5|text|{query_digest('eiffel tower height')}"}
    assert cache.key_for(BACKEND, "text", "Eiffel Towers height", 5) not in keys
    assert cache.key_for(BACKEND, "text", same[0], 3) not in keys
    assert cache.key_for("other", "text", same[0], 5) not in keys


def test_key_parts_survive_backend_ids_with_separators(cache: SearchCache) -> None:
    key = cache.put("local|bm25|k1=1.2", "text", "q", 7, text_results())
    parts = parse_entry_key(key)
    assert (parts.backend_id, parts.top_k, parts.kind) == ("local|bm25|k1=1.2", 7, "text")


def test_round_trip_equality_source_and_thumbnail_dedupe(cache: SearchCache) -> None:
    assert cache.get(BACKEND, "text", "Eiffel Tower", 5) is None
    cache.put(BACKEND, "text", "Eiffel Tower", 5, text_results())
    cache.put(BACKEND, "image", _pixels(0), 5, image_results((1, 2)))
    cache.put(BACKEND, "image", _pixels(9), 5, image_results((2, 3)))
    hit = cache.get(BACKEND, "text", "eiffel tower", 5)
    assert hit == text_results() and hit.source == "cache_hit"
    image_hit = cache.get(BACKEND, "image", _pixels(0), 5)
    assert image_hit == image_results((1, 2)) and image_hit.source == "cache_hit"
    assert np.array_equal(image_hit.items[0].thumbnail.pixels, _pixels(1, (8, 8)))
    # a memoised hit hands out fresh thumbnails (nothing decoded is kept by the cache)
    again = cache.get(BACKEND, "image", _pixels(0), 5)
    assert again == image_hit and again.items[0].thumbnail is not image_hit.items[0].thumbnail
    assert cache.stats().images == 3  # thumbnail 2 stored once


def test_listing_len_and_stats(cache: SearchCache) -> None:
    cache.put(BACKEND, "text", "Eiffel  Tower", 5, text_results())
    cache.put(BACKEND, "image", QueryImage(_pixels(), url="https://img.example/q.png"), 5, image_results())
    cache.put("other", "text", "q", 3, text_results("b"))
    assert len(cache) == 3 and cache.backend_ids() == ["other", BACKEND]
    entries = {entry.key: entry for entry in cache}
    text = next(e for e in entries.values() if e.kind == "text" and e.backend_id == BACKEND)
    assert text.query == "Eiffel  Tower" and text.results == text_results()
    image = next(e for e in entries.values() if e.kind == "image")
    assert image.image_digest == image_digest(_pixels()) and image.image_url == "https://img.example/q.png"
    stats = cache.stats()
    assert stats.entries == 3 and stats.images == 2 and stats.size_bytes > 0
    assert stats.by_backend == {"other": {"image": 0, "text": 1}, BACKEND: {"image": 1, "text": 1}}
    with pytest.raises(KeyError, match="no entry 'v1|nope"):
        cache.get_entry("v1|nope|1|text|" + "0" * 64)


@pytest.mark.parametrize("args, message", [
    (("", "text", "q", 5), "backend_id must be a non-empty string"),
    ((BACKEND, "video", "q", 5), "'video'"),
    ((BACKEND, "text", "q", 0), "top_k must be an int >= 1, got 0"),
    ((BACKEND, "text", "q", True), "got True"),
    ((BACKEND, "image", "photo.png", 5), "'photo.png'"),
    ((BACKEND, "text", b"q", 5), "text query must be a string"),
])
def test_bad_arguments_are_named(cache: SearchCache, args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("|", r"\|").replace("(", r"\(")):
        cache.get(*args)


def test_put_refuses_failed_or_mismatched_results(cache: SearchCache) -> None:
    with pytest.raises(ValueError, match="refusing to cache a failed search .*'quota exceeded'"):
        cache.put(BACKEND, "text", "q", 5, SearchResults.failed("text", "quota exceeded"))
    with pytest.raises(ValueError, match="cannot cache image results under text key"):
        cache.put(BACKEND, "text", "q", 5, image_results())
    assert len(cache) == 0


def test_rewrites_by_another_process_are_seen_despite_the_memo(tmp_path: Path) -> None:
    with SearchCache(tmp_path / "c") as first, SearchCache(tmp_path / "c") as second:
        first.put(BACKEND, "text", "q", 5, text_results("a"))
        assert first.get(BACKEND, "text", "q", 5) == text_results("a")
        second.put(BACKEND, "text", "q", 5, text_results("b"))
        assert first.get(BACKEND, "text", "q", 5) == text_results("b")


def _garble(directory: Path, key: str, change) -> None:
    """Rewrite a stored value behind the cache's back (plain diskcache, bytes stay bytes)."""
    plain = diskcache.Cache(str(directory))
    plain.set(key, change(plain.get(key)))
    plain.close()


@pytest.mark.parametrize("change", [
    lambda data: data[:-7],  # truncated
    lambda data: data[:-30] + bytes([data[-30] ^ 0x20]) + data[-29:],  # one flipped bit in the JSON
    lambda data: data[:10] + b"0" + data[11:],  # damaged checksum
    lambda data: b"",
], ids=["truncated", "flipped-bit", "bad-checksum", "empty"])
def test_garbled_entries_raise_corrupt_cache_entry_naming_the_key(tmp_path: Path, change) -> None:
    with SearchCache(tmp_path / "c") as cache:
        key = cache.put(BACKEND, "text", "Eiffel Tower", 5, text_results())
        assert cache.get(BACKEND, "text", "Eiffel Tower", 5) is not None  # memoised first
        _garble(tmp_path / "c", key, change)
        with pytest.raises(CorruptCacheEntry, match="corrupt search cache entry") as raised:
            cache.get(BACKEND, "text", "Eiffel Tower", 5)
        assert raised.value.key == key and key in str(raised.value)
        with pytest.raises(CorruptCacheEntry):
            list(cache.entries())


def test_garbled_bytes_in_sqlite_are_detected(tmp_path: Path) -> None:
    with SearchCache(tmp_path / "c") as cache:
        key = cache.put(BACKEND, "text", "q", 5, text_results())
    db = sqlite3.connect(tmp_path / "c" / "cache.db")
    (value,) = db.execute("SELECT value FROM Cache WHERE key = ?", (key,)).fetchone()
    db.execute("UPDATE Cache SET value = ? WHERE key = ?", (value.replace(b"snippet", b"snipper"), key))
    db.commit()
    db.close()
    with SearchCache(tmp_path / "c") as cache, pytest.raises(CorruptCacheEntry, match="checksum mismatch"):
        cache.get(BACKEND, "text", "q", 5)


def test_damaged_or_missing_thumbnails_name_the_entry(tmp_path: Path) -> None:
    with SearchCache(tmp_path / "c") as cache:
        key = cache.put(BACKEND, "image", _pixels(), 5, image_results((1,)))
    sha = hashlib.sha256(_thumb(1).data).hexdigest()
    _garble(tmp_path / "c", image_blob_key(sha), lambda data: data[:-1])
    with SearchCache(tmp_path / "c") as cache, pytest.raises(CorruptCacheEntry, match="fails its checksum") as raised:
        cache.get(BACKEND, "image", _pixels(), 5)
    assert raised.value.key == key
    plain = diskcache.Cache(str(tmp_path / "c"))
    del plain[image_blob_key(sha)]
    plain.close()
    with SearchCache(tmp_path / "c") as cache, pytest.raises(CorruptCacheEntry, match="is missing"):
        cache.get(BACKEND, "image", _pixels(), 5)


class _Trap:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickled_values_are_never_unpickled(tmp_path: Path) -> None:
    trap = tmp_path / "unpickled"
    with SearchCache(tmp_path / "c") as cache:
        key = cache.key_for(BACKEND, "text", "q", 5)
    plain = diskcache.Cache(str(tmp_path / "c"))
    plain.set(key, _Trap(trap))  # not bytes: diskcache pickles it
    plain.close()
    pickle.dumps(_Trap(trap))  # the trap is a real pickle payload
    with SearchCache(tmp_path / "c") as cache:
        with pytest.raises(CorruptCacheEntry, match="pickle"):
            cache.get(BACKEND, "text", "q", 5)
        with pytest.raises(CorruptCacheEntry):
            cache.get_entry(key)
        with pytest.raises(TypeError, match="bytes"):
            cache._cache.set("x", {"not": "bytes"})
    assert not trap.exists()


def test_opening_checks_the_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file, not a cache directory"):
        SearchCache(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="no search cache at"):
        SearchCache(tmp_path / "missing", create=False)
    other = diskcache.Cache(str(tmp_path / "other"))
    other.set("foreign", b"value")
    other.close()
    with pytest.raises(ValueError, match="not an mmsearch-gym search cache"):
        SearchCache(tmp_path / "other")
    with pytest.raises(ValueError, match="memo_entries"):
        SearchCache(tmp_path / "c", memo_entries=-1)


def test_readonly_and_pickling(tmp_path: Path) -> None:
    with SearchCache(tmp_path / "c") as cache:
        cache.put(BACKEND, "text", "q", 5, text_results())
        clone = pickle.loads(pickle.dumps(cache))
        assert clone.get(BACKEND, "text", "q", 5) == text_results()
        clone.close()
    with SearchCache(tmp_path / "c", readonly=True) as readonly:
        assert readonly.get(BACKEND, "text", "q", 5) == text_results()
        with pytest.raises(PermissionError, match="read-only"):
            readonly.put(BACKEND, "text", "other", 5, text_results())
