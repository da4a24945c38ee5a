"""One safe way to read a zip file that a stranger sent: cache bundles and leaderboard submissions.

Why one reader: bundles (`cache.bundle`) and submission packages (`benchmarks.submission`) both come
from anyone, and two hand-written readers had drifted apart (different name rules, one checked
compression ratios, the other did not). Here is one set of limits (`ArchiveLimits`) and one set of
checks, each reported as a one-line reason naming the member and the bad value:

1. `layout_problems`, before `zipfile` parses anything: the end record's member count and central
   directory size (zipfile builds one object per declared member), a zip64 record that disagrees, bytes
   after the end record, and bytes *before* the archive. The last one matters: zipfile silently
   skips a prefix, so "a tampered zip followed by an honest one" in one file reads as the honest one
   here while other tools (or a streaming reader) see the tampered one. Such files are refused.
2. `member_problems`, on the parsed central directory: unsafe names (``..``, absolute, backslash,
   drive names, NUL), symbolic links, duplicate names, encryption, compression methods outside the
   allowed set, declared sizes over the limits (per member, in total, and by compression ratio), and
   members that are not laid out back to back (hidden bytes or overlapping members, the trick behind
   non-recursive zip bombs).
3. `read_member`: reads through a bounded stream whatever the headers claim, checks the CRC, and
   compares the actual with the declared size.

Nothing is ever extracted to disk. This module is ground: it imports nothing from mmsearch_gym but
`checks`, so any layer may use it.
"""

from __future__ import annotations

import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Literal, Sequence

from mmsearch_gym.checks import require_int, require_number

__all__ = [
    "ArchiveError", "ArchiveLimits", "ArchiveProblem", "ProblemKind", "layout_problems", "member_problems",
    "open_archive", "read_member", "unsafe_name_reason",
]

ProblemKind = Literal["not_a_zip", "unsafe", "too_large", "malformed"]
"""not_a_zip: no readable zip at all; unsafe: a name or type that could escape a directory;
too_large: over a limit; malformed: anything else wrong with the structure or a member's bytes."""

_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_LOCAL_HEADER = b"PK\x03\x04"
_LOCAL_HEADER_SIZE = 30
_METHOD_NAMES = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated", zipfile.ZIP_BZIP2: "bzip2",
                 zipfile.ZIP_LZMA: "lzma"}


@dataclass(frozen=True)
class ArchiveLimits:
    """Ceilings checked against both the declared and the actually read sizes.

    max_members: members in the archive (read from the end record before zipfile parses it).
    max_member_bytes: uncompressed bytes of one member; `member_bytes` overrides it per member name.
    max_total_bytes: uncompressed bytes of all members together.
    max_central_directory_bytes: size of the central directory.
    compression_methods: allowed zip methods (`zipfile.ZIP_STORED`, `zipfile.ZIP_DEFLATED`).
    max_archive_bytes: size of the file itself (None: no limit beyond the others).
    max_ratio: highest uncompressed/compressed ratio for members over `ratio_floor_bytes` (None: no
        check). Honest JSON compresses 5-30x, a deflate bomb about 1000x.
    """

    max_members: int = 10_000
    max_member_bytes: int = 64 * 2**20
    max_total_bytes: int = 2**30
    max_central_directory_bytes: int = 4 * 2**20
    compression_methods: frozenset[int] = frozenset({zipfile.ZIP_STORED})
    member_bytes: tuple[tuple[str, int], ...] = field(default=())
    max_archive_bytes: int | None = None
    max_ratio: float | None = None
    ratio_floor_bytes: int = 2**20

    def __post_init__(self) -> None:
        require_int("max_members", self.max_members, low=0)
        require_int("max_member_bytes", self.max_member_bytes, low=0)
        require_int("max_total_bytes", self.max_total_bytes, low=0)
        require_int("max_central_directory_bytes", self.max_central_directory_bytes, low=0)
        require_int("ratio_floor_bytes", self.ratio_floor_bytes, low=0)
        if self.max_archive_bytes is not None:
            require_int("max_archive_bytes", self.max_archive_bytes, low=0)
        if self.max_ratio is not None:
            require_number("max_ratio", self.max_ratio, low=1.0)
        for name, limit in self.member_bytes:
            require_int(f"member_bytes[{name!r}]", limit, low=0)
        for method in self.compression_methods:
            require_int("compression method", method, low=0)

    def member_limit(self, name: str) -> int:
        """The uncompressed-size ceiling of the member called `name`."""
        for member, limit in self.member_bytes:
            if member == name:
                return limit
        return self.max_member_bytes


@dataclass(frozen=True)
class ArchiveProblem:
    """One reason to refuse an archive; `member` names the offending member when there is one."""

    kind: ProblemKind
    reason: str
    member: str | None = None

    def __str__(self) -> str:
        return self.reason


class ArchiveError(ValueError):
    """An archive was refused; `problems` holds every reason found (`reasons`: their texts)."""

    def __init__(self, problems: Sequence[ArchiveProblem]) -> None:
        self.problems = list(problems)
        self.reasons = [problem.reason for problem in self.problems]
        super().__init__("; ".join(self.reasons))


def _methods(methods: Iterable[int]) -> str:
    return ", ".join(f"{_METHOD_NAMES.get(method, 'method')} ({method})" for method in sorted(methods))


# -- 1. the end record, before zipfile ------------------------------------------------------------------

def layout_problems(path: str | Path, limits: ArchiveLimits) -> list[ArchiveProblem]:
    """Problems visible from the end of the file alone: no end record, bytes after it or before the
    archive, a member count or central directory over the limits, a multi-disk archive."""
    path = Path(path)
    label = path.name
    if not path.is_file():
        return [ArchiveProblem("not_a_zip", f"{str(path)!r} does not exist or is not a file")]
    size = path.stat().st_size
    if limits.max_archive_bytes is not None and size > limits.max_archive_bytes:
        return [ArchiveProblem("too_large", f"{label} is {size} bytes (limit {limits.max_archive_bytes})")]
    with path.open("rb") as handle:
        start = max(0, size - _EOCD_SIZE - 65535)
        handle.seek(start)
        tail = handle.read()
        at = tail.rfind(_EOCD, 0, max(0, len(tail) - _EOCD_SIZE + len(_EOCD)))  # the last complete record
        if at < 0:
            return [ArchiveProblem("not_a_zip", f"{label} is not a zip file (no end-of-central-directory record)")]
        (disk, cd_disk, disk_entries, entries, cd_size, cd_offset,
         comment_size) = struct.unpack("<HHHHIIH", tail[at + 4:at + _EOCD_SIZE])
        eocd_pos = start + at
        trailing = size - (eocd_pos + _EOCD_SIZE + comment_size)
        if trailing != 0:
            return [ArchiveProblem("malformed", f"{label} has {abs(trailing)} bytes "
                                   f"{'of trailing data after' if trailing > 0 else 'missing from'} "
                                   "its end record (a second archive or other data appended?)")]
        if disk != 0 or cd_disk != 0 or disk_entries != entries:
            return [ArchiveProblem("malformed", f"{label} is a multi-disk (spanned) archive")]
        cd_end = eocd_pos
        if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
            locator_pos = eocd_pos - _ZIP64_LOCATOR_SIZE
            handle.seek(max(0, locator_pos))
            locator = handle.read(_ZIP64_LOCATOR_SIZE)
            if locator_pos < 0 or locator[:4] != _ZIP64_LOCATOR:
                return [ArchiveProblem("malformed", f"{label} declares zip64 sizes but has no zip64 locator")]
            _, record_pos, _ = struct.unpack("<IQI", locator[4:])
            cd_end = locator_pos - _ZIP64_EOCD_SIZE  # the zip64 end record (no extensible data) ends here
            handle.seek(max(0, cd_end))
            record = handle.read(_ZIP64_EOCD_SIZE)
            if cd_end < 0 or record[:4] != _ZIP64_EOCD:
                return [ArchiveProblem("malformed", f"{label} has a damaged or extended zip64 end record")]
            entries, _, cd_size, cd_offset = struct.unpack("<QQQQ", record[24:56])
            if record_pos != cd_end:
                return [ArchiveProblem("malformed", f"{label} has {cd_end - record_pos} bytes before the "
                                       "archive (another zip or other data concatenated in front of it)")]
    problems = []
    if entries > limits.max_members:
        problems.append(ArchiveProblem("too_large", f"{label} declares {entries} members in a {cd_size}-byte "
                                       f"directory (limit {limits.max_members} members)"))
    if cd_size > limits.max_central_directory_bytes:
        problems.append(ArchiveProblem("too_large", f"{label} has a {cd_size}-byte central directory (limit "
                                       f"{limits.max_central_directory_bytes})"))
    prefix = cd_end - cd_size - cd_offset
    if prefix > 0:
        problems.append(ArchiveProblem("malformed", f"{label} has {prefix} bytes before the archive (another "
                                       "zip or other data concatenated in front of it)"))
    elif prefix < 0:
        problems.append(ArchiveProblem("malformed", f"{label} has a central directory that overlaps its end "
                                       "record"))
    return problems


def open_archive(path: str | Path, limits: ArchiveLimits) -> zipfile.ZipFile:
    """The zip at `path` once every layout and member check passed (use it as a context manager);
    `ArchiveError` with every problem found otherwise."""
    problems = layout_problems(path, limits)
    if problems:
        raise ArchiveError(problems)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError,
            struct.error) as error:
        raise ArchiveError([ArchiveProblem("not_a_zip", f"{Path(path).name} is not a readable zip: {error}")]) \
            from None
    try:
        problems = member_problems(archive, limits)
    except BaseException:
        archive.close()
        raise
    if problems:
        archive.close()
        raise ArchiveError(problems)
    return archive


# -- 2. the central directory ---------------------------------------------------------------------------

def unsafe_name_reason(name: str) -> str | None:
    """Why a member name could escape the directory it is extracted to (None: it cannot)."""
    if not name.strip("/"):
        return "names no file (empty or only slashes)"
    if "\x00" in name:
        return "contains a NUL character"
    if "\\" in name:
        return "contains a backslash"
    if name.startswith("/"):
        return "is an absolute path"
    if len(name) > 1 and name[1] == ":":
        return "starts with a drive name"
    if any(part in ("..", ".") for part in name.split("/")):
        return "escapes its directory (path traversal)"
    return None


def member_problems(archive: zipfile.ZipFile, limits: ArchiveLimits) -> list[ArchiveProblem]:
    """Every problem with the members' names, types, methods and declared sizes, and with their layout."""
    infos = archive.infolist()
    problems: list[ArchiveProblem] = []
    if len(infos) > limits.max_members:
        problems.append(ArchiveProblem("too_large", f"archive has {len(infos)} members (limit {limits.max_members})"))
    seen: set[str] = set()
    declared = 0
    for info in infos:
        name = info.filename
        unsafe = unsafe_name_reason(name)
        if unsafe is not None:
            problems.append(ArchiveProblem("unsafe", f"member {name!r} has an unsafe path: it {unsafe}", name))
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            problems.append(ArchiveProblem("unsafe", f"member {name!r} is a symbolic link", name))
            continue
        if name in seen:
            problems.append(ArchiveProblem("malformed", f"member {name!r} appears more than once", name))
            continue
        seen.add(name)
        if info.flag_bits & 0x1:
            problems.append(ArchiveProblem("malformed", f"member {name!r} is encrypted", name))
        if info.compress_type not in limits.compression_methods:
            problems.append(ArchiveProblem(
                "malformed", f"member {name!r} is compressed with method {info.compress_type}; allowed: "
                f"{_methods(limits.compression_methods)}", name))
        elif info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            problems.append(ArchiveProblem("malformed", f"member {name!r} is stored but declares {info.file_size} "
                                           f"bytes uncompressed and {info.compress_size} stored", name))
        limit = limits.member_limit(name)
        if info.file_size > limit:
            problems.append(ArchiveProblem("too_large", f"member {name!r} declares {info.file_size} uncompressed "
                                           f"bytes (limit {limit})", name))
        elif (limits.max_ratio is not None and info.file_size > limits.ratio_floor_bytes
              and info.file_size > limits.max_ratio * max(info.compress_size, 1)):
            problems.append(ArchiveProblem(
                "too_large", f"member {name!r} declares a compression ratio of "
                f"{info.file_size / max(info.compress_size, 1):.0f}:1 (limit {limits.max_ratio:.0f}:1): a zip bomb?",
                name))
        declared += info.file_size
    if declared > limits.max_total_bytes:
        problems.append(ArchiveProblem("too_large", f"archive declares {declared} uncompressed bytes in all "
                                       f"(limit {limits.max_total_bytes})"))
    if not problems:
        problems.extend(_gap_problems(archive, infos))
    return problems


def _gap_problems(archive: zipfile.ZipFile, infos: Sequence[zipfile.ZipInfo]) -> list[ArchiveProblem]:
    """Members must follow each other back to back from byte 0 up to the central directory: a gap hides
    data that only some readers see, an overlap lets one stored byte count for many members."""
    if archive.filename is None:  # pragma: no cover - we always open by path
        return []
    start_dir = getattr(archive, "start_dir", None)
    expected, previous = 0, "the start of the file"
    with open(archive.filename, "rb") as handle:
        for info in sorted(infos, key=lambda item: item.header_offset):
            name = info.filename
            if info.header_offset != expected:
                gap = info.header_offset - expected
                what = f"{gap} unlisted bytes" if gap > 0 else f"{-gap} bytes of overlap"
                return [ArchiveProblem("malformed", f"member {name!r} has {what} between it and {previous} "
                                       "(a member that lies about its size, or hidden data)", name)]
            handle.seek(info.header_offset)
            header = handle.read(_LOCAL_HEADER_SIZE)
            if len(header) < _LOCAL_HEADER_SIZE or header[:4] != _LOCAL_HEADER:
                return [ArchiveProblem("malformed", f"member {name!r} has no local header", name)]
            name_size, extra_size = struct.unpack("<HH", header[26:30])
            expected = info.header_offset + _LOCAL_HEADER_SIZE + name_size + extra_size + info.compress_size
            if info.flag_bits & 0x8:  # a data descriptor follows the data
                expected += _descriptor_size(handle, expected, start_dir)
            previous = f"member {name!r}"
    if start_dir is not None and start_dir != expected:
        gap = start_dir - expected
        what = f"{gap} unlisted bytes" if gap > 0 else f"{-gap} bytes of overlap"
        return [ArchiveProblem("malformed", f"archive has {what} between {previous} and its central directory "
                               "(a member that lies about its size, or hidden data)")]
    return []


def _descriptor_size(handle: BinaryIO, at: int, start_dir: int | None) -> int:
    """Length of the data descriptor at `at`: optional signature, CRC, then 32- or 64-bit sizes."""
    handle.seek(at)
    data = handle.read(28)
    base = 4 if data[:4] == b"PK\x07\x08" else 0
    for size in (base + 12, base + 20):
        if data[size:size + 4] in (_LOCAL_HEADER, b"PK\x01\x02") or at + size == start_dir:
            return size
    return base + 12


# -- 3. reading a member --------------------------------------------------------------------------------

def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: ArchiveLimits) -> bytes:
    """A member's bytes, read through a bounded stream (at most its limit + 1 bytes are ever
    decompressed, whatever the headers claim) and checked against its CRC and declared size;
    `ArchiveError` with one problem naming the member otherwise."""
    name, limit = info.filename, limits.member_limit(info.filename)
    try:
        with archive.open(info) as member:
            data = member.read(min(limit, info.file_size) + 1)
            if len(data) <= limit:
                member.read(1)  # reach the end so that zipfile checks the CRC
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError) as error:
        raise ArchiveError([ArchiveProblem("malformed", f"member {name!r} cannot be read: {error}", name)]) \
            from None
    if len(data) > limit:
        raise ArchiveError([ArchiveProblem("too_large", f"member {name!r} holds more than {limit} bytes", name)])
    if len(data) != info.file_size:
        raise ArchiveError([ArchiveProblem(
            "too_large" if len(data) > info.file_size else "malformed",
            f"member {name!r} holds {len(data)} bytes but declares {info.file_size}", name)])
    if (limits.max_ratio is not None and len(data) > limits.ratio_floor_bytes
            and len(data) > limits.max_ratio * max(info.compress_size, 1)):
        raise ArchiveError([ArchiveProblem(
            "too_large", f"member {name!r} has a compression ratio over {limits.max_ratio:.0f}:1: a zip bomb?", name)])
    return data
