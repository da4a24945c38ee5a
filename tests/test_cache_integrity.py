"""A damaged cache says which cache is damaged; what is replayed is what the bundle pins; opening for
replay does not walk every key."""

from __future__ import annotations

import os
import random
from pathlib import Path

import diskcache
import pytest
from typer.testing import CliRunner

from mmsearch_gym.cache import (
    BundleHashMismatch, BundleLimits, CachedSearchBackend, CorruptCache, CorruptCacheEntry, SearchCache,
    export_bundle, import_bundle, open_bundle_cache,
)
from mmsearch_gym.cache import bundle_format
from mmsearch_gym.cache.metadata import BACKEND_IDS_KEY
from mmsearch_gym.commands.cache import app
from mmsearch_gym.search import SearchItem, SearchResults

BACKEND = "static:integrity"


def _results(tag: str) -> SearchResults:
    return SearchResults("text", (SearchItem(f"title {tag}", f"https://e.org/{tag}", "snippet " * 40),))


def _filled(directory: Path, count: int = 300) -> Path:
    with SearchCache(directory) as cache:
        for i in range(count):
            cache.put(BACKEND, "text", f"query {i}", 5, _results(str(i)))
    for extra in directory.glob("cache.db-*"):  # a closed cache: everything is in cache.db
        extra.unlink()
    return directory


def _use(directory: Path) -> None:
    """Everything a user does with a cache: open, count, list, look up."""
    with SearchCache(directory, create=False) as cache:
        len(cache)
        cache.stats()
        cache.backend_ids()
        for key in cache.keys():
            cache.get_by_key(key)


def _one_line_naming(error: BaseException, directory: Path) -> None:
    text = str(error)
    assert str(directory) in text and "\n" not in text, text


# -- corrupt database files -----------------------------------------------------------------------------

def test_a_truncated_database_names_the_cache(tmp_path: Path) -> None:
    directory = _filled(tmp_path / "c")
    database = directory / "cache.db"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])
    with pytest.raises(CorruptCache) as caught:
        _use(directory)
    _one_line_naming(caught.value, directory)
    assert "cannot be read" in str(caught.value)
    result = CliRunner().invoke(app, ["stats", str(directory)])
    assert result.exit_code == 1 and str(directory) in result.output and len(result.output.splitlines()) <= 3
    from mmsearch_gym.cli import app as main_app

    result = CliRunner().invoke(main_app, ["eval", "--limit", "1", "--cache", str(directory),
                                           "--out", str(tmp_path / "runs")])
    assert result.exit_code != 0 and str(directory) in result.output and len(result.output.splitlines()) == 1


def test_a_garbled_key_names_the_cache(tmp_path: Path) -> None:
    directory = _filled(tmp_path / "c", count=20)
    database = directory / "cache.db"
    data = database.read_bytes()
    key = f"v1|{BACKEND}|5|text|".encode()
    assert data.count(key) >= 20
    database.write_bytes(data.replace(key, f"v1|{BACKEND}|5|tex!|".encode(), 1))  # one key garbled on disk
    with pytest.raises(CorruptCacheEntry) as caught:
        _use(directory)
    _one_line_naming(caught.value, directory)


@pytest.mark.parametrize("seed", [*range(6), 10, 30])  # 10: garbled diskcache settings; 30: a garbled key
def test_random_damage_is_a_one_line_error_naming_the_cache(tmp_path: Path, seed: int) -> None:
    directory = _filled(tmp_path / "c")
    database = directory / "cache.db"
    data = bytearray(database.read_bytes())
    rng = random.Random(seed)
    for _ in range(rng.choice([1, 5, 40])):  # garble runs of bytes anywhere
        at = rng.randrange(0, len(data) - 16)
        data[at:at + 16] = bytes(rng.randrange(256) for _ in range(16))
    database.write_bytes(bytes(data))
    try:
        _use(directory)
    except CorruptCacheEntry as error:
        _one_line_naming(error, directory)


@pytest.mark.parametrize("how", ["create=False", "readonly", "create=True"])
def test_an_empty_database_file_is_refused_not_repaired(tmp_path: Path, how: str) -> None:
    directory = _filled(tmp_path / "c", count=3)
    (directory / "cache.db").write_bytes(b"")
    kwargs = {"create=False": {"create": False}, "readonly": {"readonly": True}, "create=True": {}}[how]
    with pytest.raises(CorruptCache, match="is empty") as caught:
        SearchCache(directory, **kwargs)
    _one_line_naming(caught.value, directory)
    assert (directory / "cache.db").stat().st_size == 0  # left as it was found
    with pytest.raises(CorruptCache):
        CachedSearchBackend.replay(directory)


# -- the extracted copy of a bundle ---------------------------------------------------------------------

@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    export_bundle(_filled(tmp_path / "source", count=5), tmp_path / "b.zip")
    return tmp_path / "b.zip"


def _tamper_with_copy(bundle: Path, work: Path) -> Path:
    with open_bundle_cache(bundle, work_dir=work) as copy:
        directory = Path(copy.directory)
    with SearchCache(directory, create=False) as writable:  # what an edit of the user cache dir does
        writable.put(BACKEND, "text", "query 0", 5, _results("edited"))
    return directory


def test_verify_checks_the_extracted_copy_that_replays(bundle: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    with open_bundle_cache(bundle, work_dir=work, verify=True) as copy:  # an honest copy passes
        assert copy.get(BACKEND, "text", "query 0", 5) == _results("0")
    directory = _tamper_with_copy(bundle, work)
    with pytest.raises(BundleHashMismatch) as caught:
        open_bundle_cache(bundle, work_dir=work, verify=True)
    _one_line_naming(caught.value, directory)
    os.environ["MMSEARCH_GYM_HOME"] = str(tmp_path / "home")
    try:
        home_copy = _tamper_with_copy(bundle, tmp_path / "home" / "bundles")
        with pytest.raises(BundleHashMismatch):
            CachedSearchBackend.replay(bundle, verify=True)
        result = CliRunner().invoke(app, ["verify", str(bundle)])
        assert result.exit_code == 1 and str(home_copy) in result.output
        result = CliRunner().invoke(app, ["verify", str(bundle), "--work-dir", str(tmp_path / "fresh")])
        assert result.exit_code == 0 and "no extracted copy" in result.output
    finally:
        del os.environ["MMSEARCH_GYM_HOME"]


def test_import_reopens_the_bundle_with_the_callers_limits(bundle: Path, tmp_path: Path) -> None:
    strict_default = bundle_format.DEFAULT_LIMITS
    original = strict_default.max_members
    object.__setattr__(strict_default, "max_members", 2)  # a default stricter than what the caller allows
    strict_default.__dict__.pop("archive_limits", None)  # derived from the fields; recomputed on next use
    try:
        import_bundle(bundle, tmp_path / "imported", limits=BundleLimits(max_members=100))
    finally:
        object.__setattr__(strict_default, "max_members", original)
        strict_default.__dict__.pop("archive_limits", None)
    with SearchCache(tmp_path / "imported", create=False) as cache:
        assert len(cache) == 5


# -- backend ids in the metadata ------------------------------------------------------------------------

def test_replay_reads_the_backend_ids_without_walking_the_keys(tmp_path: Path, monkeypatch) -> None:
    directory = _filled(tmp_path / "c", count=3)
    with SearchCache(directory) as cache:
        cache.put("second", "text", "q", 5, _results("q"))

    def walked(self):
        raise AssertionError("replay walked every key to find the backend ids")

    monkeypatch.setattr(SearchCache, "_all_keys", walked)
    replay = CachedSearchBackend.replay(directory, "second")
    assert replay.backend_id == "second"
    with pytest.raises(ValueError, match=r"holds 2 backend ids \['second', 'static:integrity'\]"):
        CachedSearchBackend.replay(directory)


def test_caches_without_the_metadata_get_it_once(tmp_path: Path, bundle: Path) -> None:
    directory = _filled(tmp_path / "c", count=3)
    with diskcache.Cache(str(directory)) as raw:  # a cache written before the metadata existed
        del raw[BACKEND_IDS_KEY]
    with SearchCache(directory, readonly=True) as readonly:
        assert not readonly.has_backend_ids_metadata
        assert readonly.backend_ids() == [BACKEND]
        assert not readonly.has_backend_ids_metadata  # read-only: computed, not stored
    with SearchCache(directory) as writable:
        assert writable.backend_ids() == [BACKEND] and writable.has_backend_ids_metadata
    import_bundle(bundle, tmp_path / "imported")
    with SearchCache(tmp_path / "imported", readonly=True) as imported:
        assert imported.has_backend_ids_metadata and imported.backend_ids() == [BACKEND]
