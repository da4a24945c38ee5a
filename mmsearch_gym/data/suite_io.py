"""The on-disk suite format: a directory any tool can read without this package.

    <suite>/suite.json      manifest: format, format_version, name, version, count, sha256, metadata
    <suite>/samples.jsonl   one canonical JSON object per sample (sorted keys, compact separators):
                            id, question, answers, candidate_answers, category, source, meta
    <suite>/images/<id>.png the sample's image, PNG

The suite hash (`suite_hash`) is sha256 over a header, the sha256 of samples.jsonl, and for each
sample in file order its id and the sha256 of its image bytes. It pins a dataset in a run manifest
or on a leaderboard: any changed byte in questions, answers or images changes it.

Reading is lazy: samples carry the image *path* (VQASample decodes on use), so a 10k-sample suite
loads in well under a second; hashing reads each image file once (`verify=False` skips that). A
damaged image therefore fails on use, as an ImageError naming the sample and the image file; writing
decodes every image once, so a suite is never written with one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

from PIL import Image

from mmsearch_gym.checks import parse_json_object, require_int
from mmsearch_gym.data.sample import VQASample

FORMAT = "mmsearch-gym-suite"
FORMAT_VERSION = 1
MANIFEST = "suite.json"
SAMPLES = "samples.jsonl"
IMAGES = "images"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_FIELDS = ("id", "question", "answers", "candidate_answers", "category", "source", "meta")

PathLike = Union[str, "os.PathLike[str]"]


def _canonical(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _png(sample: VQASample) -> bytes:
    """The sample's image as PNG bytes; PNG inputs (bytes or a file) are kept byte for byte.

    Every image is decoded once, PNG inputs included, so that a truncated or oversized image is
    refused here (ImageError naming the sample and where its image came from) instead of being
    written into a suite that would fail mid-run.
    """
    pixels = sample.rgb()
    image = sample.image
    if isinstance(image, (bytes, bytearray)) and bytes(image[:8]) == _PNG_SIGNATURE:
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        data = Path(image).read_bytes()
        if data[:8] == _PNG_SIGNATURE:
            return data
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _record(sample: VQASample) -> dict[str, Any]:
    record = {
        "id": sample.id, "question": sample.question, "answers": list(sample.answers),
        "candidate_answers": list(sample.candidate_answers), "category": sample.category,
        "source": sample.source, "meta": dict(sample.meta or {}),
    }
    try:
        _canonical(record)
    except (TypeError, ValueError) as error:
        raise ValueError(f"sample {sample.id!r}: meta is not JSON-serialisable: {error}") from error
    return record


def _digest(samples_bytes: bytes, image_digests: Sequence[tuple[str, str]]) -> str:
    hasher = hashlib.sha256(f"{FORMAT}/{FORMAT_VERSION}\n".encode())
    hasher.update(f"{SAMPLES} {hashlib.sha256(samples_bytes).hexdigest()}\n".encode())
    for sample_id, digest in image_digests:
        hasher.update(f"{sample_id} {digest}\n".encode())
    return hasher.hexdigest()


def reset_image_dir(images: Path, pattern: str) -> Path:
    """Create `images` (and its parents), removing the files matching `pattern` that an earlier write
    left there: a rewritten suite or corpus must not keep a stale image under a reused name."""
    if images.is_dir():
        for stale in images.glob(pattern):
            stale.unlink()
    images.mkdir(parents=True, exist_ok=True)
    return images


def write_suite(samples: Sequence[VQASample], path: PathLike, *, name: str | None = None,
                version: str = "1", metadata: Mapping[str, Any] | None = None,
                overwrite: bool = False) -> str:
    """Write `samples` as a suite directory at `path` and return its suite hash.

    Ids become file names, so they must match [A-Za-z0-9][A-Za-z0-9._-]* and be unique. An existing
    suite at `path` is replaced only with `overwrite=True` (its old images are removed first).
    """
    root = Path(path)
    samples = tuple(samples)
    if not samples:
        raise ValueError("cannot write an empty suite")
    seen: set[str] = set()
    for position, sample in enumerate(samples):
        if not isinstance(sample, VQASample):
            raise ValueError(f"item {position} is a {type(sample).__name__}, not a VQASample")
        if not _SAFE_ID.fullmatch(sample.id):
            raise ValueError(f"sample id {sample.id!r} cannot be a file name: use letters, digits, '.', '_', '-'")
        if sample.id in seen:
            raise ValueError(f"duplicate sample id {sample.id!r}")
        seen.add(sample.id)
    if (root / MANIFEST).exists() or (root / SAMPLES).exists():
        if not overwrite:
            raise ValueError(f"{str(root)!r} already holds a suite; pass overwrite=True to replace it")
    images = reset_image_dir(root / IMAGES, "*.png")
    (root / MANIFEST).unlink(missing_ok=True)  # a half-written suite must not look complete

    lines, image_digests = [], []
    for sample in samples:
        lines.append(_canonical(_record(sample)))
        data = _png(sample)
        (images / f"{sample.id}.png").write_bytes(data)
        image_digests.append((sample.id, hashlib.sha256(data).hexdigest()))
    samples_bytes = ("\n".join(lines) + "\n").encode("utf-8")
    (root / SAMPLES).write_bytes(samples_bytes)
    digest = _digest(samples_bytes, image_digests)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name or root.name,
                "version": str(version), "count": len(samples), "sha256": digest,
                "metadata": dict(metadata or {})}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return digest


def read_manifest(path: PathLike) -> dict[str, Any]:
    """The suite's manifest, checked for format and required fields."""
    file = Path(path) / MANIFEST
    if not Path(path).is_dir():
        raise ValueError(f"suite directory not found: {str(path)!r}")
    if not file.is_file():
        raise ValueError(f"suite manifest missing: {str(file)!r}")
    manifest = parse_json_object(file.read_bytes(), repr(str(file)))
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{str(file)!r} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{str(file)!r}: unsupported format_version {manifest.get('format_version')!r}, "
                         f"this reader knows {FORMAT_VERSION}")
    for key in ("name", "version", "sha256"):
        if not isinstance(manifest.get(key), str):
            raise ValueError(f"{str(file)!r}: field {key!r} must be a str, got {manifest.get(key)!r}")
    require_int(f"{str(file)!r}: field 'count'", manifest.get("count"), low=0)
    return manifest


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _parse(root: Path) -> tuple[bytes, list[dict[str, Any]], list[int]]:
    """samples.jsonl's bytes, records and their line numbers, each line checked; errors name the file
    and line."""
    file = root / SAMPLES
    if not file.is_file():
        raise ValueError(f"suite samples file missing: {str(file)!r}")
    data = file.read_bytes()
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    seen: set[str] = set()
    for number, line in enumerate(data.decode("utf-8", errors="replace").split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{str(file)!r} line {number}"
        record = parse_json_object(line, where)
        missing = [key for key in _FIELDS if key not in record]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        if not isinstance(record["id"], str) or not _SAFE_ID.fullmatch(record["id"]):
            raise ValueError(f"{where}: bad sample id {record['id']!r}")
        if record["id"] in seen:
            raise ValueError(f"{where}: duplicate sample id {record['id']!r}")
        seen.add(record["id"])
        if not isinstance(record["question"], str):
            raise ValueError(f"{where}: question must be a string, got {record['question']!r}")
        for key in ("answers", "candidate_answers"):
            if not _str_list(record[key]):
                raise ValueError(f"{where}: {key} must be a list of strings, got {record[key]!r}")
        if not isinstance(record["meta"], dict):
            raise ValueError(f"{where}: meta must be an object, got {record['meta']!r}")
        if not isinstance(record["source"], str):
            raise ValueError(f"{where}: source must be a string, got {record['source']!r}")
        records.append(record)
        numbers.append(number)
    return data, records, numbers


def _image_path(root: Path, sample_id: str) -> Path:
    path = root / IMAGES / f"{sample_id}.png"
    if not path.is_file():
        raise ValueError(f"image missing for sample {sample_id!r}: {str(path)!r}")
    return path


def suite_hash(path: PathLike) -> str:
    """Recompute the suite hash from the files (not from the manifest)."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"suite directory not found: {str(path)!r}")
    data, records, _ = _parse(root)
    digests = [(r["id"], hashlib.sha256(_image_path(root, r["id"]).read_bytes()).hexdigest()) for r in records]
    return _digest(data, digests)


def read_suite(path: PathLike, *, verify: bool = True) -> tuple[VQASample, ...]:
    """The suite's samples, their images as file paths (decoded on use).

    Raises ValueError for a missing directory, manifest, samples file or image (naming it), a
    malformed line (file and line number), a count that disagrees with the manifest, and, when
    `verify`, a suite hash that differs from the manifest's.
    """
    root = Path(path)
    manifest = read_manifest(root)
    data, records, numbers = _parse(root)
    if len(records) != manifest["count"]:
        raise ValueError(f"{str(root / MANIFEST)!r} says {manifest['count']} samples, "
                         f"{str(root / SAMPLES)!r} has {len(records)}")
    paths = [_image_path(root, record["id"]) for record in records]
    if verify:
        digest = _digest(data, [(r["id"], hashlib.sha256(p.read_bytes()).hexdigest())
                                for r, p in zip(records, paths, strict=True)])
        if digest != manifest["sha256"]:
            raise ValueError(f"suite hash mismatch for {str(root)!r}: manifest says {manifest['sha256']}, "
                             f"files hash to {digest} (a file was changed after writing)")
    samples = []
    for record, image, number in zip(records, paths, numbers, strict=True):
        try:
            samples.append(VQASample(
                id=record["id"], image=str(image), question=record["question"],
                answers=tuple(record["answers"]), candidate_answers=tuple(record["candidate_answers"]),
                category=record["category"], source=record["source"], meta=record["meta"],
            ))
        except ValueError as error:
            raise ValueError(f"{str(root / SAMPLES)!r} line {number}: {error}") from error
    return tuple(samples)
