"""Importing MMSearch-R1's released image-search cache into a verified bundle.

Why: FVQA's release (HF dataset `lmms-lab/FVQA`) ships the image-search results MMSearch-R1 trained
and evaluated with, as pickles (`fvqa_{train,test}_image_search_results_cache.pkl`): a dict
``data_id -> {"tool_returned_web_title_list": [str, ...], "tool_returned_images_urls": [URL str or
PIL image, ...], ...}``. Offline work on the task needs exactly these results, but our caches refuse
pickles, their thumbnail URLs rot, and new Pillow versions cannot unpickle the old images.

How: the pickle is read by `safe_pickle` (no code runs; images are rebuilt from their raw pixels),
fully validated before anything is written, then each entry is stored as an image search keyed by
the question image's *pixels* (found through ``data_id`` in the dataset), under a backend id naming
the source, with the `top_k` the environment searches with. Replaying the bundle through the
environment is then content-addressed like any recording. Items pair titles and images in order,
as MMSearch-R1's rollout does (``zip``: a length mismatch is counted). Embedded images become stored
PNG thumbnails (lossless, so pixels equal the pickled ones); URL strings are fetched once each with
``fetch_thumbnails`` through the bounded fetcher, public hosts only, and a URL that fails gives a
title-only item: an image is never substituted. Keys other than the two lists, and the data_id,
are kept per entry in the provenance file ``<bundle>.import.json`` written beside the bundle (the
bundle's entry format has no free-form field).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from mmsearch_gym.cache import BundleInfo, SearchCache, export_bundle
from mmsearch_gym.cache.importers.safe_pickle import (
    DEFAULT_LIMITS,
    MalformedPickle,
    PickledImage,
    PickleLimits,
    safe_loads,
)
from mmsearch_gym.cache.keys import check_backend_id, check_top_k, resolve_image_digest
from mmsearch_gym.imaging import ImageLike
from mmsearch_gym.runs import write_bytes_atomic
from mmsearch_gym.search.types import EncodedImage, SearchItem, SearchResults

BACKEND_ID = "mmsearch-r1-fvqa-release"
TITLES_KEY = "tool_returned_web_title_list"
IMAGES_KEY = "tool_returned_images_urls"
DEFAULT_TOP_K = 5
REPORT_SUFFIX = ".import.json"
THUMBNAIL_MAX_BYTES = 5_000_000
_MAX_METADATA_DEPTH = 32
_EXAMPLES = 5


@dataclass(frozen=True)
class ReleaseEntry:
    """One validated entry of the pickle: items as (title, URL string or pickled image) pairs."""

    data_id: str
    titles: tuple[str, ...]
    images: tuple[str | PickledImage, ...]
    metadata: dict[str, Any]


@dataclass
class ImportReport:
    """What an import did; `lines()` is what the CLI prints, the JSON form is written beside the bundle."""

    pickle_path: str
    pickle_sha256: str
    output: str
    backend_id: str
    top_k: int
    entries: int = 0
    imported: int = 0
    images_embedded: int = 0
    images_fetched: int = 0
    title_only: int = 0
    fetch_failures: int = 0
    missing_data_ids: list[str] = field(default_factory=list)
    conflicting_duplicates: list[str] = field(default_factory=list)
    length_mismatches: list[str] = field(default_factory=list)
    truncated_to_top_k: int = 0
    failed_urls: list[str] = field(default_factory=list)
    dataset_without_entry: int = 0
    bundle_sha256: str = ""
    bundle: BundleInfo | None = None

    def lines(self) -> list[str]:
        def examples(values: list[str]) -> str:
            return f" (e.g. {', '.join(values[:_EXAMPLES])})" if values else ""

        return [
            (f"entries in pickle: {self.entries}   imported: {self.imported}   backend id: {self.backend_id}"
             f"   top_k: {self.top_k}"),
            (f"thumbnails embedded: {self.images_embedded}   fetched: {self.images_fetched}   "
             f"title-only (URL not fetched): {self.title_only}   fetch failures: {self.fetch_failures}"),
            f"data_ids missing from the dataset: {len(self.missing_data_ids)}{examples(self.missing_data_ids)}",
            (f"same question image, different results (first data_id kept): {len(self.conflicting_duplicates)}"
             f"{examples(self.conflicting_duplicates)}"),
            (f"titles/images of different lengths (paired up to the shorter): {len(self.length_mismatches)}"
             f"{examples(self.length_mismatches)}   entries cut to top_k: {self.truncated_to_top_k}"),
            f"dataset samples with no entry (strict replay of them misses): {self.dataset_without_entry}",
            f"bundle sha256: {self.bundle_sha256}",
        ]


def _json_safe(value: Any, where: str, depth: int = 0) -> Any:
    """Metadata as JSON: plain values kept, bytes and images described, anything deeper refused."""
    if depth > _MAX_METADATA_DEPTH:
        raise MalformedPickle(f"{where}: metadata nested deeper than {_MAX_METADATA_DEPTH} levels (or cyclic)")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()}
    if isinstance(value, PickledImage):
        return {"pickled_image": value.qualname}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item, where, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_safe(item, where, depth + 1) for key, item in value.items()}
    return {"unsupported": type(value).__name__}


def parse_release(obj: Any, label: str = "pickle") -> dict[str, ReleaseEntry]:
    """Validate the unpickled structure; MalformedPickle naming the data_id and key otherwise."""
    if not isinstance(obj, dict):
        raise MalformedPickle(f"{label}: top-level object is a {type(obj).__name__}, expected a dict "
                              f"data_id -> {{{TITLES_KEY!r}, {IMAGES_KEY!r}}}")
    entries: dict[str, ReleaseEntry] = {}
    for raw_id, value in obj.items():
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
            raise MalformedPickle(f"{label}: data_id {raw_id!r} is a {type(raw_id).__name__}, expected str or int")
        data_id = str(raw_id)
        where = f"{label}: entry {data_id!r}"
        if data_id in entries:
            raise MalformedPickle(f"{where}: data_id appears twice (as {raw_id!r} and another type)")
        if not isinstance(value, dict):
            raise MalformedPickle(f"{where} is a {type(value).__name__}, expected a dict")
        for key in (TITLES_KEY, IMAGES_KEY):
            if not isinstance(value.get(key), (list, tuple)):
                raise MalformedPickle(f"{where}: {key!r} is {type(value.get(key)).__name__}, expected a list")
        titles, images = value[TITLES_KEY], value[IMAGES_KEY]
        for index, title in enumerate(titles):
            if not isinstance(title, str):
                raise MalformedPickle(f"{where}: {TITLES_KEY}[{index}] is a {type(title).__name__}, expected str")
        for index, image in enumerate(images):
            if not isinstance(image, (str, PickledImage)):
                raise MalformedPickle(f"{where}: {IMAGES_KEY}[{index}] is a {type(image).__name__}, "
                                      "expected a URL string or a PIL JPEG/PNG image")
        metadata = {str(key): _json_safe(item, where) for key, item in value.items()
                    if key not in (TITLES_KEY, IMAGES_KEY)}
        entries[data_id] = ReleaseEntry(data_id, tuple(titles), tuple(images), metadata)
    return entries


def question_images_by_data_id(samples: Iterable[Any]) -> dict[str, ImageLike]:
    """``data_id -> question image`` of dataset samples (`VQASample`s): ``meta["data_id"]`` when the
    loader keeps it there, else the sample id (the FVQA loader uses data_id as the id)."""
    images: dict[str, ImageLike] = {}
    for sample in samples:
        meta = getattr(sample, "meta", None) or {}
        raw = meta.get("data_id") if isinstance(meta, Mapping) else None
        data_id = str(raw) if raw is not None and not isinstance(raw, bool) else str(sample.id)
        if data_id in images:
            raise ValueError(f"the dataset holds data_id {data_id!r} twice; the pickle cannot be matched to it")
        images[data_id] = sample.image
    return images


def _png_thumbnail(image: PickledImage, limits: PickleLimits) -> EncodedImage:
    return EncodedImage.from_pil(image.to_pil(limits), "PNG")


def _fetch_thumbnail(url: str, fetcher: Any, allow_private_hosts: bool, limits: PickleLimits) -> EncodedImage:
    """The image at `url`, checked to decode within the pixel limit; raises on any failure."""
    from mmsearch_gym.net.fetch import (  # httpx: an optional dependency
        check_http_url,
        public_hosts_only,
    )

    fetched = fetcher.request("GET", check_http_url(url, "thumbnail URL"), what=f"thumbnail {url}",
                              max_bytes=THUMBNAIL_MAX_BYTES,
                              url_guard=None if allow_private_hosts else public_hosts_only)
    thumbnail = EncodedImage(fetched.body)
    if thumbnail.mime_type not in ("image/png", "image/jpeg", "image/webp", "image/gif"):
        raise ValueError(f"{url} is not a PNG/JPEG/WebP/GIF image ({fetched.content_type or 'no content type'})")
    with Image.open(io.BytesIO(fetched.body)) as opened:
        if opened.width * opened.height > limits.max_image_pixels:
            raise ValueError(f"{url} is a {opened.width}x{opened.height} image, over the pixel limit")
        opened.load()
    return thumbnail


def _write_json_atomic(path: Path, value: Any) -> None:
    write_bytes_atomic(path, json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode("utf-8"))


def import_mmsearch_r1(
    pickle_path: str | os.PathLike[str],
    question_images: Mapping[str, ImageLike],
    output: str | os.PathLike[str],
    *,
    backend_id: str = BACKEND_ID,
    top_k: int = DEFAULT_TOP_K,
    fetch_thumbnails: bool = False,
    fetcher: Any = None,
    allow_private_hosts: bool = False,
    limits: PickleLimits = DEFAULT_LIMITS,
) -> ImportReport:
    """Convert MMSearch-R1's released image-search pickle into the bundle file `output`.

    question_images: ``data_id -> question image`` (see `question_images_by_data_id`).
    top_k: the results per search the bundle answers for (the environment's `top_k`; longer lists are cut).
    fetch_thumbnails: fetch URL thumbnails once each (with `fetcher`, an `HttpFetcher`, or a default one);
        without it URL items are title-only. allow_private_hosts: also fetch loopback/private addresses.
    The pickle is loaded safely and validated in full before anything is written; the bundle and
    ``<output>.import.json`` are each written atomically. Raises `PickleRefused` for a refused pickle.
    """
    check_backend_id(backend_id)
    top_k = check_top_k(top_k)
    source, target = Path(pickle_path), Path(output)
    if target.is_dir():
        raise ValueError(f"bundle output {str(target)!r} is a directory; give a file name")
    if not source.is_file():
        raise MalformedPickle(f"pickle file {str(source)!r} does not exist or is not a file")
    size = source.stat().st_size
    if size > limits.max_file_bytes:
        raise MalformedPickle(f"pickle file {str(source)!r} is {size} bytes, over the limit of {limits.max_file_bytes}")
    data = source.read_bytes()
    label = f"pickle file {str(source)!r}"
    entries = parse_release(safe_loads(data, label=label), label)
    thumbnails: dict[int, EncodedImage] = {}  # every image is rebuilt before anything is written
    for entry in entries.values():
        for index, image in enumerate(entry.images):
            if isinstance(image, PickledImage) and id(image) not in thumbnails:
                try:
                    thumbnails[id(image)] = _png_thumbnail(image, limits)
                except MalformedPickle as error:
                    raise MalformedPickle(f"{label}: entry {entry.data_id!r} {IMAGES_KEY}[{index}]: {error}") from None
    report = ImportReport(pickle_path=str(source), pickle_sha256=hashlib.sha256(data).hexdigest(),
                          output=str(target), backend_id=backend_id, top_k=top_k, entries=len(entries))
    del data
    fetched: dict[str, EncodedImage | None] = {}
    owned_fetcher = None
    if fetch_thumbnails and fetcher is None:
        from mmsearch_gym.net.fetch import HttpFetcher

        fetcher = owned_fetcher = HttpFetcher()
    provenance: dict[str, Any] = {}
    digests: dict[str, tuple[str, SearchResults]] = {}  # question digest -> (first data_id, results)
    try:
        for data_id in sorted(entries):
            entry = entries[data_id]
            if data_id not in question_images:
                report.missing_data_ids.append(data_id)
                continue
            if len(entry.titles) != len(entry.images):
                report.length_mismatches.append(data_id)
            pairs = list(zip(entry.titles, entry.images))
            if len(pairs) > top_k:
                report.truncated_to_top_k += 1
                pairs = pairs[:top_k]
            items = []
            for title, image in pairs:
                thumbnail: EncodedImage | None = None
                if isinstance(image, PickledImage):
                    thumbnail = thumbnails[id(image)]
                    report.images_embedded += 1
                elif fetch_thumbnails:
                    if image not in fetched:
                        try:
                            fetched[image] = _fetch_thumbnail(image, fetcher, allow_private_hosts, limits)
                        except Exception as error:  # HttpError, ValueError, PIL errors: a title-only item
                            fetched[image] = None
                            report.failed_urls.append(f"{image}: {error}")
                    thumbnail = fetched[image]
                    if thumbnail is None:
                        report.fetch_failures += 1
                    else:
                        report.images_fetched += 1
                else:
                    report.title_only += 1
                items.append(SearchItem(title=title, url=image if isinstance(image, str) else "", snippet="",
                                        thumbnail=thumbnail))
            results = SearchResults("image", tuple(items))
            digest = resolve_image_digest(question_images[data_id])
            if digest in digests:
                if digests[digest][1] != results:
                    report.conflicting_duplicates.append(data_id)
                provenance[data_id] = {"image_digest": digest, "same_image_as": digests[digest][0],
                                       "metadata": entry.metadata}
                continue
            digests[digest] = (data_id, results)
            provenance[data_id] = {"image_digest": digest, "items": len(items), "metadata": entry.metadata}
    finally:
        if owned_fetcher is not None:
            owned_fetcher.close()
    if not digests:
        raise ValueError(f"none of the {len(entries)} data_ids of {str(source)!r} is in the dataset "
                         f"(e.g. {sorted(entries)[:3]}); is --suite the split the pickle belongs to?")
    with tempfile.TemporaryDirectory(prefix="mmsearch-r1-import-") as scratch:
        with SearchCache(Path(scratch) / "cache") as cache:
            with cache.transaction():
                for digest, (_, results) in digests.items():
                    cache.put(backend_id, "image", digest, top_k, results)
            info: BundleInfo = export_bundle(cache, target)
    report.imported = info.entry_count
    report.dataset_without_entry = len(set(question_images) - set(entries))
    report.bundle = info
    report.bundle_sha256 = info.sha256
    _write_json_atomic(target.with_name(target.name + REPORT_SUFFIX),
                       {"report": asdict(report), "entries": provenance})
    return report


__all__ = [
    "BACKEND_ID",
    "DEFAULT_TOP_K",
    "IMAGES_KEY",
    "REPORT_SUFFIX",
    "TITLES_KEY",
    "ImportReport",
    "ReleaseEntry",
    "import_mmsearch_r1",
    "parse_release",
    "question_images_by_data_id",
]
