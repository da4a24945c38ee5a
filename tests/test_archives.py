"""The one safe zip reader: every hostile structure is refused with a one-line reason naming it."""

from __future__ import annotations

import ntpath
import posixpath
import stat
import struct
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsearch_gym.archives import (
    ArchiveError, ArchiveLimits, layout_problems, open_archive, read_member, unsafe_name_reason,
)
from zips import zip_bytes as _zip_bytes

STORED_AND_DEFLATED = ArchiveLimits(compression_methods=frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _reasons(path: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[str]:
    with pytest.raises(ArchiveError) as caught:
        with open_archive(path, limits) as archive:
            for info in archive.infolist():
                read_member(archive, info, limits)
    assert all("\n" not in reason for reason in caught.value.reasons)
    return caught.value.reasons


HONEST = [("a.json", b'{"honest": true}'), ("b.json", b"[1, 2, 3]")]
TAMPERED = [("a.json", b'{"honest": false}'), ("b.json", b"[9, 9, 9]")]


def test_an_honest_archive_reads_back(tmp_path: Path) -> None:
    path = _write(tmp_path / "ok.zip", _zip_bytes(HONEST))
    with open_archive(path, ArchiveLimits()) as archive:
        assert {info.filename: read_member(archive, info, ArchiveLimits()) for info in archive.infolist()} == dict(HONEST)
    deflated = _write(tmp_path / "deflated.zip", _zip_bytes(HONEST, zipfile.ZIP_DEFLATED))
    with open_archive(deflated, STORED_AND_DEFLATED) as archive:
        assert archive.read("b.json") == b"[1, 2, 3]"


def test_a_tampered_zip_followed_by_an_honest_one_is_refused(tmp_path: Path) -> None:
    # zipfile alone reads this file as the honest archive (it skips the prefix); other tools see the
    # tampered one, so the same bytes would mean two different things.
    path = _write(tmp_path / "two.zip", _zip_bytes(TAMPERED) + _zip_bytes(HONEST))
    with zipfile.ZipFile(path) as plain:
        assert plain.read("a.json") == b'{"honest": true}'
    reasons = _reasons(path)
    assert reasons == [f"two.zip has {len(_zip_bytes(TAMPERED))} bytes before the archive (another zip or other "
                       "data concatenated in front of it)"]


@pytest.mark.parametrize("suffix", [_zip_bytes(TAMPERED), b"x"])
def test_data_after_the_end_record_is_refused(tmp_path: Path, suffix: bytes) -> None:
    path = _write(tmp_path / "tail.zip", _zip_bytes(HONEST) + suffix)
    assert any("after its end record" in reason or "bytes before the archive" in reason for reason in _reasons(path))


def test_data_hidden_between_members_is_refused(tmp_path: Path) -> None:
    data = _zip_bytes(HONEST)
    second = data.index(b"PK\x03\x04", 4)
    hidden = data[:second] + b"HIDDEN" + data[second:]
    # shift every offset after the insertion: the central directory's member offset and its own offset
    central = hidden.index(b"PK\x01\x02")
    patched = bytearray(hidden)
    at = patched.index(b"PK\x01\x02", central + 4)
    offset = struct.unpack_from("<I", patched, at + 42)[0]
    struct.pack_into("<I", patched, at + 42, offset + 6)
    end = patched.rindex(b"PK\x05\x06")
    struct.pack_into("<I", patched, end + 16, struct.unpack_from("<I", patched, end + 16)[0] + 6)
    path = _write(tmp_path / "hidden.zip", bytes(patched))
    assert _reasons(path) == ["member 'b.json' has 6 unlisted bytes between it and member 'a.json' (a member that "
                              "lies about its size, or hidden data)"]


def test_overlapping_members_are_refused(tmp_path: Path) -> None:
    data = bytearray(_zip_bytes(HONEST))
    first = data.index(b"PK\x01\x02")
    second = data.index(b"PK\x01\x02", first + 4)
    struct.pack_into("<I", data, second + 42, 0)  # b.json's entry points at a.json's bytes
    path = _write(tmp_path / "overlap.zip", bytes(data))
    assert any("overlap" in reason or "cannot be read" in reason for reason in _reasons(path))


@pytest.mark.parametrize("name, reason", [
    ("../evil", "escapes its directory (path traversal)"),
    ("a/./b", "escapes its directory (path traversal)"),
    ("/etc/passwd", "is an absolute path"),
    ("entries\\..\\x", "contains a backslash"),
    ("C:evil", "starts with a drive name"),
    ("a\x00b", "contains a NUL character"),
])
def test_unsafe_names(name: str, reason: str, tmp_path: Path) -> None:
    assert unsafe_name_reason(name) == reason
    if "\x00" not in name:  # zipfile itself cuts names at NUL
        path = _write(tmp_path / "names.zip", _zip_bytes(HONEST + [(name, b"x")]))
        assert f"member {name!r} has an unsafe path: it {reason}" in _reasons(path)
    assert unsafe_name_reason("entries/ab.json") is None


def test_links_duplicates_methods_and_sizes(tmp_path: Path) -> None:
    link = _write(tmp_path / "link.zip", _zip_bytes(HONEST + [("l", b"/etc")], attrs={"l": (stat.S_IFLNK | 0o777) << 16}))
    assert _reasons(link) == ["member 'l' is a symbolic link"]
    duplicate = _write(tmp_path / "dup.zip", _zip_bytes(HONEST + [("a.json", b"{}")]))
    assert _reasons(duplicate) == ["member 'a.json' appears more than once"]
    deflated = _write(tmp_path / "deflated.zip", _zip_bytes(HONEST, zipfile.ZIP_DEFLATED))
    assert _reasons(deflated)[0] == "member 'a.json' is compressed with method 8; allowed: stored (0)"
    big = _write(tmp_path / "big.zip", _zip_bytes(HONEST))
    assert _reasons(big, ArchiveLimits(member_bytes=(("b.json", 3),))) == [
        "member 'b.json' declares 9 uncompressed bytes (limit 3)"]
    assert _reasons(big, ArchiveLimits(max_total_bytes=20)) == ["archive declares 25 uncompressed bytes in all (limit 20)"]


def test_compression_ratio_bombs(tmp_path: Path) -> None:
    bomb = _write(tmp_path / "bomb.zip", _zip_bytes([("x", b"\0" * (4 * 2**20))], zipfile.ZIP_DEFLATED))
    limits = ArchiveLimits(compression_methods=STORED_AND_DEFLATED.compression_methods, max_ratio=200.0)
    assert "declares a compression ratio of" in _reasons(bomb, limits)[0]


def test_the_member_count_is_refused_before_zipfile_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path / "many.zip", _zip_bytes([(f"m{i}", b"") for i in range(20)]))

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("zipfile parsed a directory that is over the limits")

    monkeypatch.setattr(zipfile, "ZipFile", never)
    assert layout_problems(path, ArchiveLimits(max_members=5))[0].reason.startswith("many.zip declares 20 members")
    assert "central directory" in _reasons(path, ArchiveLimits(max_central_directory_bytes=100))[0]


def test_lying_sizes_and_bad_crc_are_caught_while_reading(tmp_path: Path) -> None:
    data = bytearray(_zip_bytes(HONEST))
    at = data.index(b'{"honest": true}')
    data[at + 2] ^= 1  # the bytes no longer match the CRC
    path = _write(tmp_path / "crc.zip", bytes(data))
    assert _reasons(path) == ["member 'a.json' cannot be read: Bad CRC-32 for file 'a.json'"]
    lying = bytearray(_zip_bytes([("x", b"\0" * 100_000)], zipfile.ZIP_DEFLATED))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        struct.pack_into("<I", lying, lying.index(signature) + offset, 10)  # declares 10 bytes
    path = _write(tmp_path / "lying.zip", bytes(lying))
    assert "member 'x' cannot be read" in _reasons(path, STORED_AND_DEFLATED)[0]


def test_not_a_zip(tmp_path: Path) -> None:
    assert "not a zip file" in _reasons(_write(tmp_path / "junk.zip", b"PK not a zip"))[0]
    assert "does not exist" in _reasons(tmp_path / "absent.zip")[0]
    assert "is 11 bytes (limit 5)" in _reasons(_write(tmp_path / "j.zip", b"hello world"),
                                                ArchiveLimits(max_archive_bytes=5))[0]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_members must be an int >= 0, got -1"):
        ArchiveLimits(max_members=-1)
    with pytest.raises(ValueError, match="max_ratio"):
        ArchiveLimits(max_ratio=True)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), cut=st.integers(0, 400), flip=st.integers(0, 10_000))
def test_damaged_bytes_give_archive_errors_only(tmp_path: Path, data: bytes, cut: int, flip: int) -> None:
    honest = bytearray(_zip_bytes(HONEST))
    honest[flip % len(honest)] ^= 0xFF
    for candidate in (data, bytes(honest), bytes(honest[:cut]), data + bytes(honest)):
        path = _write(tmp_path / "fuzz.zip", candidate)
        try:
            with open_archive(path, STORED_AND_DEFLATED) as archive:
                for info in archive.infolist():
                    read_member(archive, info, STORED_AND_DEFLATED)
        except ArchiveError as error:
            assert error.reasons and all("\n" not in reason for reason in error.reasons)



_PART = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)


@settings(max_examples=400, deadline=None)
@given(parts=st.lists(st.one_of(_PART, st.sampled_from(["..", ".", "", "C:", "a\\..", "/", "\\"])),
                      min_size=1, max_size=5))
def test_a_name_called_safe_stays_inside_its_directory_on_posix_and_windows(parts: list[str]) -> None:
    name = "/".join(parts)
    if unsafe_name_reason(name) is not None:
        return
    assert posixpath.normpath(posixpath.join("/base", name)).startswith("/base/")
    assert ntpath.normpath(ntpath.join("C:\\base", name)).startswith("C:\\base\\")
