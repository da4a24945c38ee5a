"""Bundles: byte-identical exports, verification, and every refused import leaving the target as it was."""

from __future__ import annotations

import hashlib
import json
import pickle
import stat
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from typer.testing import CliRunner

from mmsearch_gym.cache import (
    BundleError, BundleLimits, SearchCache, export_bundle, import_bundle, open_bundle_cache, verify_bundle,
)
from mmsearch_gym.cache.bundle import (
    BundleConflict, BundleFormatError, BundleHashMismatch, BundleTooLarge, UnsafeBundleMember,
)
from mmsearch_gym.cache.serialize import canonical_json
from mmsearch_gym.commands.cache import app
from mmsearch_gym.search import EncodedImage, SearchItem, SearchResults
from zips import zip_bytes

BACKEND = "static:bundle-test"


def _thumb(seed: int) -> EncodedImage:
    return EncodedImage.from_array(np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8))


def _fill(cache: SearchCache, order: list[int] | None = None) -> None:
    for i in order if order is not None else range(4):
        cache.put(BACKEND if i % 2 else "other:backend", "text", f"query {i}", 5,
                  SearchResults("text", (SearchItem(f"t{i}", f"https://e.org/{i}", f"snippet {i}"),)))
        cache.put(BACKEND, "image", "%064x" % (i + 1), 5,
                  SearchResults("image", (SearchItem(f"img {i}", "u", "", _thumb(i % 3)),)))


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    with SearchCache(tmp_path / "source") as cache:
        _fill(cache)
        export_bundle(cache, tmp_path / "source.zip")
    return tmp_path / "source.zip"


def _snapshot(directory: Path) -> dict | None:
    if not directory.exists():
        return None
    with SearchCache(directory, create=False) as cache:
        return {"entries": {key: cache.read_payload(key) for key in cache.keys()},
                "images": sorted(cache.image_hashes())}


@pytest.fixture()
def target(tmp_path: Path) -> Path:
    """A cache that already holds one entry of its own."""
    with SearchCache(tmp_path / "target") as cache:
        cache.put("mine", "text", "kept", 3, SearchResults("text", (SearchItem("a", "b", "c"),)))
    return tmp_path / "target"


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write_zip(path: Path, members: list[tuple[str, bytes]], compress: int = zipfile.ZIP_STORED,
               attrs: dict[str, int] | None = None) -> Path:
    path.write_bytes(zip_bytes(members, compress, attrs))
    return path


def _rewrite(bundle: Path, out: Path, change: Callable[[dict[str, bytes]], None]) -> Path:
    members = _members(bundle)
    change(members)
    return _write_zip(out, list(members.items()))


def _manifest_edit(**fields) -> Callable[[dict[str, bytes]], None]:
    def change(members: dict[str, bytes]) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest.update(fields)
        members["manifest.json"] = canonical_json(manifest)
    return change


def _first(members: dict[str, bytes], prefix: str) -> str:
    return sorted(name for name in members if name.startswith(prefix))[0]


# -- export ---------------------------------------------------------------------------------------------

def test_exports_are_byte_identical_and_survive_a_round_trip(bundle: Path, tmp_path: Path) -> None:
    with SearchCache(tmp_path / "source", create=False) as cache:
        export_bundle(cache, tmp_path / "again.zip")
    assert (tmp_path / "again.zip").read_bytes() == bundle.read_bytes()
    with SearchCache(tmp_path / "shuffled") as cache:  # same content, other insertion order
        _fill(cache, [3, 1, 0, 2])
    export_bundle(tmp_path / "shuffled", tmp_path / "shuffled.zip")
    assert (tmp_path / "shuffled.zip").read_bytes() == bundle.read_bytes()

    info = import_bundle(bundle, tmp_path / "copy")
    export_bundle(tmp_path / "copy", tmp_path / "copy.zip")
    assert (tmp_path / "copy.zip").read_bytes() == bundle.read_bytes()
    with SearchCache(tmp_path / "source", create=False) as source, SearchCache(tmp_path / "copy") as copy:
        assert list(source.entries()) == list(copy.entries())
    assert (info.entry_count, info.image_count, info.backend_ids) == (8, 3, ("other:backend", BACKEND))


def test_manifest_and_verify(bundle: Path) -> None:
    members = _members(bundle)
    names = list(members)
    assert names[0] == "manifest.json" and names[1:] == sorted(names[1:])
    manifest = json.loads(members["manifest.json"])
    info = verify_bundle(bundle)
    assert manifest == {"format": "mmsearch-gym-search-bundle", "format_version": 1,
                        "backend_ids": ["other:backend", BACKEND], "entry_count": 8, "image_count": 3,
                        "sha256": info.sha256}
    with zipfile.ZipFile(bundle) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
        assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_export_of_an_empty_cache_and_a_missing_one(tmp_path: Path) -> None:
    with SearchCache(tmp_path / "empty") as cache:
        info = export_bundle(cache, tmp_path / "empty.zip")
    assert info.entry_count == 0 and verify_bundle(tmp_path / "empty.zip") == info
    with pytest.raises(FileNotFoundError, match="no search cache"):
        export_bundle(tmp_path / "missing", tmp_path / "x.zip")
    assert not (tmp_path / "missing").exists()


# -- refused imports ------------------------------------------------------------------------------------

def _entry_change(members: dict[str, bytes]) -> None:
    name = _first(members, "entries/")
    members[name] = members[name].replace(b'"title":"', b'"title":"edited ')


def _image_change(members: dict[str, bytes]) -> None:
    name = _first(members, "images/")
    members[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])


REFUSALS: dict[str, tuple[Callable[[Path, Path], Path], type[BundleError], str]] = {
    "traversal": (lambda b, out: _rewrite(b, out, lambda m: m.update({"../evil": b"x"})),
                  UnsafeBundleMember, r"'\.\./evil' has an unsafe path"),
    "absolute": (lambda b, out: _rewrite(b, out, lambda m: m.update({"/etc/evil": b"x"})),
                 UnsafeBundleMember, "'/etc/evil'"),
    "backslash": (lambda b, out: _rewrite(b, out, lambda m: m.update({"entries\\..\\x": b"x"})),
                  UnsafeBundleMember, "unsafe path"),
    "symlink": (lambda b, out: _write_zip(out, list(_members(b).items()) + [("images/" + "0" * 64, b"/etc")],
                                          attrs={"images/" + "0" * 64: (stat.S_IFLNK | 0o777) << 16}),
                UnsafeBundleMember, "symbolic link"),
    "unexpected member": (lambda b, out: _rewrite(b, out, lambda m: m.update({"notes.txt": b"hi"})),
                          BundleFormatError, "unexpected bundle member 'notes.txt'"),
    "manifest hash": (lambda b, out: _rewrite(b, out, _manifest_edit(sha256="0" * 64)),
                      BundleHashMismatch, "manifest declares '0000"),
    "entry edited": (lambda b, out: _rewrite(b, out, _entry_change), BundleHashMismatch, "content hash is"),
    "image edited": (lambda b, out: _rewrite(b, out, _image_change), BundleHashMismatch,
                     "does not hash to its name"),
    "unknown version": (lambda b, out: _rewrite(b, out, _manifest_edit(format_version=2)),
                        BundleFormatError, "unknown bundle format version 2"),
    "wrong count": (lambda b, out: _rewrite(b, out, _manifest_edit(entry_count=7)),
                    BundleFormatError, "declares entry_count=7"),
    "no manifest": (lambda b, out: _rewrite(b, out, lambda m: m.pop("manifest.json")),
                    BundleFormatError, "has no manifest.json"),
    "missing image": (lambda b, out: _rewrite(b, out, lambda m: m.pop(_first(m, "images/"))),
                      BundleFormatError, "lacks thumbnail member"),
    "unused image": (lambda b, out: _rewrite(b, out, lambda m: m.update({
        "images/" + hashlib.sha256(b"x").hexdigest(): b"x"})), BundleFormatError, "not used by any entry"),
    "compressed": (lambda b, out: _write_zip(out, list(_members(b).items()), compress=zipfile.ZIP_DEFLATED),
                   BundleFormatError, "is compressed"),
    "duplicate": (lambda b, out: _write_zip(out, list(_members(b).items()) + [
        ("manifest.json", _members(b)["manifest.json"])]), BundleFormatError, "appears more than once"),
    "tampered bundle in front of an honest one": (
        lambda b, out: (out.write_bytes(_rewrite(b, out.with_name("t.zip"), _entry_change).read_bytes()
                                        + b.read_bytes()), out)[1],
        BundleFormatError, "bytes before the archive"),
    "data appended": (lambda b, out: (out.write_bytes(b.read_bytes() + b"PK\x05\x06"), out)[1],
                      BundleFormatError, "trailing data after its end record"),
    "not a zip": (lambda b, out: (out.write_bytes(b"PK\x03\x04 definitely not a zip" * 10), out)[1],
                  BundleFormatError, "not a search cache bundle"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
@pytest.mark.parametrize("into", ["existing", "new"])
def test_refused_imports_leave_the_target_unchanged(case: str, into: str, bundle: Path, target: Path,
                                                     tmp_path: Path) -> None:
    make, error, message = REFUSALS[case]
    bad = make(bundle, tmp_path / "bad.zip")
    destination = target if into == "existing" else tmp_path / "fresh"
    before = _snapshot(destination)
    with pytest.raises(error, match=message):
        import_bundle(bad, destination)
    with pytest.raises(error):
        verify_bundle(bad)
    assert _snapshot(destination) == before


@pytest.mark.parametrize("limits, message", [
    (BundleLimits(max_members=3), "declares 12 members"),
    (BundleLimits(max_member_bytes=100), "declares .* bytes \\(limit 100\\)"),
    (BundleLimits(max_manifest_bytes=50), "'manifest.json' declares"),
    (BundleLimits(max_total_bytes=1000), "bytes in all"),
])
def test_size_limits(limits: BundleLimits, message: str, bundle: Path, target: Path) -> None:
    before = _snapshot(target)
    with pytest.raises(BundleTooLarge, match=message):
        import_bundle(bundle, target, limits=limits)
    assert _snapshot(target) == before


def test_sizes_declared_smaller_than_the_data_are_caught(bundle: Path, target: Path, tmp_path: Path) -> None:
    data = bytearray(bundle.read_bytes())
    members = _members(bundle)
    name = _first(members, "images/").encode()
    central = data.index(b"PK\x01\x02")  # the first central directory header
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    for offset in (20, 24):  # compressed and uncompressed size in the central directory
        size = int.from_bytes(data[central + offset:central + offset + 4], "little")
        data[central + offset:central + offset + 4] = (size - 10).to_bytes(4, "little")
    (tmp_path / "lying.zip").write_bytes(bytes(data))
    before = _snapshot(target)
    with pytest.raises(BundleError, match=name.decode()):
        import_bundle(tmp_path / "lying.zip", target)
    assert _snapshot(target) == before


class _Trap:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pickle_payload_is_rejected_and_never_executed(bundle: Path, target: Path, tmp_path: Path) -> None:
    trap = tmp_path / "unpickled"

    def plant(members: dict[str, bytes]) -> None:
        members[_first(members, "entries/")] = pickle.dumps(_Trap(trap))

    bad = _rewrite(bundle, tmp_path / "pickle.zip", plant)
    before = _snapshot(target)
    with pytest.raises(BundleFormatError, match="is not a valid entry: payload is not UTF-8 JSON"):
        import_bundle(bad, target)
    with pytest.raises(BundleFormatError):
        open_bundle_cache(bad, work_dir=tmp_path / "work")
    assert not trap.exists() and _snapshot(target) == before


def test_conflicts(bundle: Path, tmp_path: Path) -> None:
    with SearchCache(tmp_path / "source", create=False) as source:
        key = source.keys()[0]
        original = source.get_entry(key)
    with SearchCache(tmp_path / "t") as cache:
        changed = SearchResults(original.kind, (SearchItem("different", "u", ""),))  # type: ignore[arg-type]
        cache.put(original.backend_id, original.kind, original.query or original.image_digest, original.top_k,
                  changed)
    before = _snapshot(tmp_path / "t")
    with pytest.raises(BundleConflict, match=f"e.g. {key!r}"):
        import_bundle(bundle, tmp_path / "t")
    assert _snapshot(tmp_path / "t") == before
    import_bundle(bundle, tmp_path / "t", on_conflict="keep")
    with SearchCache(tmp_path / "t") as cache:
        assert cache.get_entry(key).results == changed and len(cache) == 8
    import_bundle(bundle, tmp_path / "t", on_conflict="replace")
    with SearchCache(tmp_path / "t") as cache:
        assert cache.get_entry(key).results == original.results
    with pytest.raises(ValueError, match="on_conflict must be one of"):
        import_bundle(bundle, tmp_path / "t", on_conflict="merge")  # type: ignore[arg-type]


def test_a_failure_while_writing_rolls_everything_back(bundle: Path, target: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    before = _snapshot(target)
    calls = []
    real = SearchCache.write_payload

    def failing(self, key, payload):
        calls.append(key)
        if len(calls) == 3:
            raise OSError("disk full")
        real(self, key, payload)

    monkeypatch.setattr(SearchCache, "write_payload", failing)
    with pytest.raises(OSError, match="disk full"):
        import_bundle(bundle, target)
    monkeypatch.undo()
    assert _snapshot(target) == before


def test_bundles_open_as_read_only_caches_once(bundle: Path, tmp_path: Path) -> None:
    first = open_bundle_cache(bundle, work_dir=tmp_path / "work")
    second = open_bundle_cache(bundle, work_dir=tmp_path / "work")
    assert first.directory == second.directory and first.readonly and len(first) == 8
    assert [p.name for p in (tmp_path / "work").iterdir()] == [Path(first.directory).name]
    first.close()
    second.close()


# -- command line ---------------------------------------------------------------------------------------

def test_cli_stats_export_verify_import(bundle: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["stats", str(tmp_path / "source")])
    assert result.exit_code == 0, result.output
    assert BACKEND in result.output and "thumbnails: 3" in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "source"), "-o", str(tmp_path / "cli.zip")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli.zip").read_bytes() == bundle.read_bytes()
    result = runner.invoke(app, ["verify", str(tmp_path / "cli.zip")])
    assert result.exit_code == 0 and verify_bundle(bundle).sha256 in result.output
    result = runner.invoke(app, ["import", str(tmp_path / "cli.zip"), str(tmp_path / "imported")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["list", str(tmp_path / "imported"), "-n", "3"])
    assert result.exit_code == 0 and "query 0" in result.output


def test_cli_errors_exit_1_with_a_message(bundle: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = _rewrite(bundle, tmp_path / "bad.zip", _manifest_edit(format_version=9))
    result = runner.invoke(app, ["verify", str(bad)])
    assert result.exit_code == 1 and "unknown bundle format version 9" in result.output
    result = runner.invoke(app, ["stats", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no search cache at" in result.output
    result = runner.invoke(app, ["stats", str(bundle)])
    assert result.exit_code == 1 and "cache verify" in result.output
    result = runner.invoke(app, ["import", str(bad), str(tmp_path / "t")])
    assert result.exit_code == 1 and not (tmp_path / "t").exists()
