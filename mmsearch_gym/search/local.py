"""`LocalCorpusBackend`: real, offline, deterministic retrieval over a corpus directory (DESIGN §5).

Image search: every page image is indexed by 64-bit perceptual hashes (imagehash.phash) of the whole
image and of seven crops of it (three centred, four corner-anchored); a query is hashed once, whole,
and matched by Hamming distance (numpy popcount over uint64 XOR) under a threshold, so an unrelated
image returns nothing. Why the crop hashes: a single phash catches re-encodes and resizes but only
~half of 10% crops (docs/measured-floors.md); with the crops stored at index time, centre
crops down to 80% (and, with crops="all", corner crops of 90%) match at distance <= 8 while unrelated
images stay >= 12 (measured on 350 synthetic and 1/f-noise images), and the query still costs one
phash.

Text search: BM25 (bm25s) over title + text, tokenised by `summarize.tokenize`; each hit's snippet is
an extractive summary of the page for the query.

The index is built once and persisted under `<corpus>/.index/<build key>/`, with a manifest holding
the fingerprint of pages.jsonl (size, mtime, sha256); a changed file is rebuilt, an unchanged one is
loaded with memory maps. Texts are not kept in memory: hits are read back from pages.jsonl by
byte offset. bm25s and imagehash are optional dependencies (`mmsearch-gym[local]`), imported here only.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import shutil
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image

from mmsearch_gym.imaging import ImageLike, load_rgb
from mmsearch_gym.search.corpus import (
    CorpusPage,
    FileFingerprint,
    file_sha256,
    pages_path,
    read_page_records,
    read_pages,
    stat_fingerprint,
)
from mmsearch_gym.search.summarize import TEXT_VERSION, extractive_summary, lead_snippet, tokenize
from mmsearch_gym.search.types import EncodedImage, QueryImage, SearchItem, SearchResults

try:
    import bm25s
    import imagehash
    from bm25s.stopwords import STOPWORDS_EN
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "LocalCorpusBackend needs bm25s and imagehash: pip install 'mmsearch-gym[local]'"
    ) from _error

# Bump when hashing, crops or thumbnails change their output (part of the index key and backend id).
HASH_VERSION = 1
INDEX_FORMAT = 1
DEFAULT_THRESHOLD = 10
INDEX_DIR_NAME = ".index"

# (kept fraction of each side, horizontal anchor, vertical anchor) of the crops hashed at index time.
CROPS: tuple[tuple[float, float, float], ...] = (
    (0.93, 0.5, 0.5), (0.86, 0.5, 0.5), (0.80, 0.5, 0.5),
    (0.90, 0.0, 0.0), (0.90, 1.0, 0.0), (0.90, 0.0, 1.0), (0.90, 1.0, 1.0),
)
HASH_ROWS = 1 + len(CROPS)
# How many of the stored variants (in CROPS order, after the whole image) a query is compared with.
# Nearest-neighbour time grows with the rows: ~0.1 ms per row per 100k images.
CROP_MODES = {"none": 1, "centre": 4, "all": HASH_ROWS}
_CROP_BASE = 128  # crops are cut from a grey 128x128 copy: phash squashes to 32x32 anyway
THUMBNAIL_MAX_SIDE = 128
THUMBNAIL_QUALITY = 85
_DRAFT_SIZE = (512, 512)  # JPEG decoders may downscale big images this far: hashes need 32x32


# --------------------------------------------------------------------------------------- hashing

def _hash_to_int(image_hash: imagehash.ImageHash) -> int:
    return int(np.packbits(np.asarray(image_hash.hash, dtype=bool).ravel()).view(">u8")[0])


def query_hash(image: Image.Image) -> int:
    """The 64-bit phash of a whole image, as queries are hashed."""
    return _hash_to_int(imagehash.phash(image))


def index_hashes(image: Image.Image) -> list[int]:
    """The HASH_ROWS hashes stored for one corpus image: the whole image, then each of CROPS."""
    hashes = [query_hash(image)]
    grey = image.convert("L").resize((_CROP_BASE, _CROP_BASE), Image.Resampling.LANCZOS)
    for keep, anchor_x, anchor_y in CROPS:
        side = max(1, round(_CROP_BASE * keep))
        left = round((_CROP_BASE - side) * anchor_x)
        top = round((_CROP_BASE - side) * anchor_y)
        hashes.append(_hash_to_int(imagehash.phash(grey.crop((left, top, left + side, top + side)))))
    return hashes


if hasattr(np, "bitwise_count"):
    def popcount64(values: np.ndarray) -> np.ndarray:
        """Set bits of each uint64 (numpy >= 2 has a native popcount)."""
        counts: np.ndarray = np.bitwise_count(values)
        return counts
else:  # pragma: no cover - numpy < 2
    _BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def popcount64(values: np.ndarray) -> np.ndarray:
        """Set bits of each uint64 (byte lookup table: numpy < 2 has no popcount)."""
        counts = _BYTE_POPCOUNT[np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8)]
        total: np.ndarray = counts.reshape(*values.shape, 8).sum(axis=-1, dtype=np.uint8)
        return total


@dataclass(frozen=True)
class HashMatch:
    page: int
    image: int
    distance: int


class HashIndex:
    """Hamming-distance nearest neighbours over the index hashes of every corpus image.

    hashes: (HASH_ROWS, n_images) uint64, variant-major (row 0 the whole images, then one row per
    crop), so that searching the first `rows` variants scans one contiguous block; image_page: page
    of each image; url_rank: rank of each page's url in sorted order (ties in distance go to the
    smaller url, so results never depend on the order of pages.jsonl lines that tie).
    """

    def __init__(self, hashes: np.ndarray, image_page: np.ndarray, url_rank: np.ndarray) -> None:
        if hashes.ndim != 2 or hashes.dtype != np.uint64 or hashes.shape[1] != len(image_page):
            raise ValueError(f"hashes must be (rows, n_images) uint64 matching image_page, got "
                             f"{hashes.dtype} {hashes.shape} and {image_page.shape}")
        self.hashes = np.ascontiguousarray(hashes)
        self.n_images = hashes.shape[1]
        self.image_page = image_page
        self.url_rank = url_rank

    def search(self, query: int, threshold: int, top_k: int, rows: int | None = None) -> list[HashMatch]:
        """Pages with an image within `threshold` bits of `query` in any of the first `rows` hash
        variants (default: all), one per page (its closest image, the lower image index on ties),
        ordered by distance then url, at most `top_k`."""
        flat = self.hashes[:rows].reshape(-1)  # a view: leading rows of a C-ordered array
        if top_k <= 0 or flat.size == 0:
            return []
        distances = popcount64(flat ^ np.uint64(query))
        hits = np.flatnonzero(distances <= threshold)
        if hits.size == 0:
            return []
        images = hits % self.n_images
        dist = distances[hits].astype(np.int64)
        pages = self.image_page[images].astype(np.int64)
        order = np.lexsort((images, dist, pages))  # by page, then distance, then image
        pages, dist, images = pages[order], dist[order], images[order]
        first = np.flatnonzero(np.r_[True, pages[1:] != pages[:-1]])
        pages, dist, images = pages[first], dist[first], images[first]
        ranking = np.lexsort((self.url_rank[pages], dist))[:top_k]
        return [HashMatch(int(pages[i]), int(images[i]), int(dist[i])) for i in ranking]


# ------------------------------------------------------------------------------------ the index

@dataclass
class _Index:
    """Everything a query needs; arrays may be memory maps of the persisted files."""

    manifest: dict[str, Any]
    page_spans: np.ndarray  # (n_pages, 2) int64 byte offsets [start, end) in pages.jsonl
    url_rank: np.ndarray  # (n_pages,) int64
    hash_index: HashIndex
    thumb_offsets: np.ndarray  # (n_images + 1,) int64 into thumbs
    thumbs: np.ndarray  # uint8, concatenated JPEG thumbnails
    bm25: Any  # bm25s.BM25, or None when the corpus has no tokens at all


_ARRAYS = ("page_spans", "url_rank", "hashes", "image_page", "thumb_offsets", "thumbs")


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.LANCZOS)
    return EncodedImage.from_pil(thumb, "JPEG", quality=THUMBNAIL_QUALITY).data


def _open_image(path: Path, page: CorpusPage, pages_file: Path) -> tuple[Image.Image, bytes]:
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", _DRAFT_SIZE)
            image = opened.convert("RGB")
    except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...
        raise ValueError(f"{str(pages_file)!r} line {page.line}: cannot read image {str(path)!r} "
                         f"of page {page.url!r}: {error}") from None
    return image, data


def _url_rank(urls: list[str]) -> np.ndarray:
    order = sorted(range(len(urls)), key=urls.__getitem__)
    rank = np.empty(len(urls), dtype=np.int64)
    rank[order] = np.arange(len(urls), dtype=np.int64)
    return rank


def _build_bm25(pages: list[CorpusPage], stopwords: frozenset[str], k1: float, b: float) -> Any:
    vocab: dict[str, int] = {}
    corpus_ids: list[list[int]] = []
    for page in pages:
        # dict lookups return the same int objects, so token lists cost a pointer per token
        corpus_ids.append([vocab.setdefault(token, len(vocab))
                           for token in tokenize(f"{page.title}\n{page.text}", stopwords)])
    if not vocab:
        return None
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index((corpus_ids, vocab), create_empty_token=False, show_progress=False)
    return retriever


def _build(pages: list[CorpusPage], fingerprint: FileFingerprint, pages_file: Path,
           build: dict[str, Any], stopwords: frozenset[str]) -> _Index:
    root = pages_file.parent
    hashes: list[list[int]] = []
    image_page: list[int] = []
    thumbs = bytearray()  # one buffer, not a list joined at the end: half the peak memory
    thumb_offsets = [0]
    seen: dict[str, tuple[str, list[int], bytes]] = {}  # an image file shared by pages is read once
    digest = hashlib.sha256(f"pages:{fingerprint.sha256}".encode())
    for number, page in enumerate(pages):
        for relative in page.images:
            if relative not in seen:
                image, data = _open_image(root / relative, page, pages_file)
                seen[relative] = (hashlib.sha256(data).hexdigest(), index_hashes(image), _thumbnail(image))
            sha, image_hashes, thumbnail = seen[relative]
            digest.update(f"\n{relative}:{sha}".encode())
            hashes.append(image_hashes)
            image_page.append(number)
            thumbs += thumbnail
            thumb_offsets.append(len(thumbs))
    del seen
    url_rank = _url_rank([page.url for page in pages])
    manifest = {
        "format": INDEX_FORMAT,
        "build": build,
        "pages_file": fingerprint.to_json(),
        "corpus_digest": digest.hexdigest(),
        "num_pages": len(pages),
        "num_images": len(image_page),
    }
    bm25 = _build_bm25(pages, stopwords, build["k1"], build["b"])
    manifest["has_text_index"] = bm25 is not None
    return _Index(
        manifest=manifest,
        page_spans=np.array([(page.offset, page.end) for page in pages], dtype=np.int64).reshape(-1, 2),
        url_rank=url_rank,
        hash_index=HashIndex(np.array(hashes, dtype=np.uint64).reshape(-1, HASH_ROWS).T,
                             np.array(image_page, dtype=np.int64), url_rank),
        thumb_offsets=np.array(thumb_offsets, dtype=np.int64),
        thumbs=np.frombuffer(thumbs, dtype=np.uint8),
        bm25=bm25,
    )


def _save(index: _Index, target: Path) -> None:
    """Write the index into a fresh directory next to `target`, then rename it into place, so a
    reader never sees a half-written index (the manifest is written last)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
    try:
        arrays = {
            "page_spans": index.page_spans, "url_rank": index.url_rank,
            "hashes": index.hash_index.hashes, "image_page": index.hash_index.image_page,
            "thumb_offsets": index.thumb_offsets, "thumbs": index.thumbs,
        }
        for name, array in arrays.items():
            np.save(staging / f"{name}.npy", array, allow_pickle=False)
        if index.bm25 is not None:
            index.bm25.save(str(staging / "bm25"), show_progress=False)
        (staging / "manifest.json").write_text(json.dumps(index.manifest, indent=1, sort_keys=True))
        try:
            os.rename(staging, target)
        except OSError:  # an older index (or one a concurrent process just wrote) is in the way
            retired = target.parent / f"{target.name}.old-{uuid.uuid4().hex}"
            try:
                os.rename(target, retired)
            except FileNotFoundError:
                pass
            os.rename(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load(target: Path, pages_file: Path, build: dict[str, Any]) -> _Index | None:
    """The persisted index if it exists, matches the build parameters and pages.jsonl is unchanged;
    None when it must be (re)built. Unreadable or inconsistent files also mean a rebuild."""
    manifest_path = target / "manifest.json"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != INDEX_FORMAT or manifest.get("build") != build:
            return None
        recorded = manifest["pages_file"]
        size, mtime_ns = stat_fingerprint(pages_file)
        if (size, mtime_ns) != (recorded["size"], recorded["mtime_ns"]):
            if size != recorded["size"] or file_sha256(pages_file) != recorded["sha256"]:
                return None
            recorded["mtime_ns"] = mtime_ns  # same bytes, touched: remember the new mtime
            _rewrite_manifest(manifest_path, manifest)
        # np.asarray: plain ndarray views of the maps (np.memmap's Python-level slicing is slow)
        arrays = {name: np.asarray(np.load(target / f"{name}.npy", mmap_mode="r", allow_pickle=False))
                  for name in _ARRAYS}
        bm25 = (bm25s.BM25.load(str(target / "bm25"), mmap=True, load_corpus=False, show_progress=False)
                if manifest["has_text_index"] else None)
        if bm25 is not None:
            for key in ("data", "indices", "indptr"):
                bm25.scores[key] = np.asarray(bm25.scores[key])
        n_pages, n_images = manifest["num_pages"], manifest["num_images"]
        consistent = (
            arrays["page_spans"].shape == (n_pages, 2) and arrays["url_rank"].shape == (n_pages,)
            and arrays["hashes"].shape == (HASH_ROWS, n_images) and arrays["image_page"].shape == (n_images,)
            and arrays["thumb_offsets"].shape == (n_images + 1,)
            and int(arrays["thumb_offsets"][-1]) == arrays["thumbs"].shape[0]
            and (bm25 is None or bm25.scores["num_docs"] == n_pages)
        )
        if not consistent:
            raise ValueError("array shapes disagree with the manifest")
    except (OSError, ValueError, KeyError, TypeError) as error:
        warnings.warn(f"rebuilding the local search index at {str(target)!r}: it could not be loaded ({error})",
                      RuntimeWarning, stacklevel=3)
        return None
    return _Index(
        manifest=manifest,
        page_spans=arrays["page_spans"],
        url_rank=arrays["url_rank"],
        hash_index=HashIndex(arrays["hashes"], arrays["image_page"], arrays["url_rank"]),
        thumb_offsets=arrays["thumb_offsets"],
        thumbs=arrays["thumbs"],
        bm25=bm25,
    )


def _rewrite_manifest(path: Path, manifest: dict[str, Any]) -> None:
    try:
        staging = path.with_name(f"manifest.json.tmp-{uuid.uuid4().hex}")
        staging.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(staging, path)
    except OSError:
        pass  # read-only index: the next load re-hashes pages.jsonl, which is only slower


# ---------------------------------------------------------------------------------- the backend

class LocalCorpusBackend:
    """Image search by perceptual hash and text search by BM25 over a local corpus directory.

    corpus_dir: a directory with pages.jsonl (format in `search.corpus`).
    threshold: largest Hamming distance (of 64 bits) that counts as the same picture. 10 catches
        re-encodes, resizes and crops of up to 20% with no false match in the measurements; 12-16
        starts matching unrelated images.
    crops: which stored hash variants queries are compared with (all are stored; this only changes
        the search): "centre" (whole image and centred crops: finds centred crops down to 80%),
        "all" (also corner crops: finds 90% corner crops and most other off-centre 90% crops, for
        twice the nearest-neighbour time: ~0.9 ms instead of ~0.45 ms at 100k images) or "none"
        (the whole image only: plain phash, resizes and re-encodes but only ~half of 10% crops).
    stopwords: drop bm25s's English stopwords from pages and queries.
    k1, b: BM25 parameters (Lucene variant).
    index_dir: where indexes are kept (default `<corpus_dir>/.index`); each set of build parameters
        gets its own subdirectory.
    rebuild: build the index even when a current one is stored (e.g. after editing an image file in
        place, which the pages.jsonl fingerprint cannot see).

    Construction raises ValueError for a missing or malformed corpus (naming the file, line and
    value); queries never raise: failures come back as `SearchResults.error`.
    """

    def __init__(
        self,
        corpus_dir: str | os.PathLike[str],
        *,
        threshold: int = DEFAULT_THRESHOLD,
        crops: str = "centre",
        stopwords: bool = True,
        k1: float = 1.5,
        b: float = 0.75,
        index_dir: str | os.PathLike[str] | None = None,
        rebuild: bool = False,
    ) -> None:
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= 64:
            raise ValueError(f"threshold must be an int number of bits in [0, 64], got {threshold!r}")
        if crops not in CROP_MODES:
            raise ValueError(f"crops must be one of {sorted(CROP_MODES)}, got {crops!r}")
        for name, value in (("k1", k1), ("b", b)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")
        if not 0 <= b <= 1:
            raise ValueError(f"b must be in [0, 1], got {b!r}")
        self._pages_file = pages_path(corpus_dir)
        self._threshold = threshold
        self._hash_rows = CROP_MODES[crops]
        self._stopwords: frozenset[str] = frozenset(STOPWORDS_EN) if stopwords else frozenset()
        build = {
            "hash_version": HASH_VERSION,
            "crops": [list(crop) for crop in CROPS],
            "thumbnail": [THUMBNAIL_MAX_SIDE, THUMBNAIL_QUALITY],
            "text_version": TEXT_VERSION,
            "stopwords": hashlib.sha256("\n".join(sorted(self._stopwords)).encode()).hexdigest()[:16],
            "k1": float(k1),
            "b": float(b),
            "bm25s": bm25s.__version__,
            "imagehash": imagehash.__version__,
            "pillow": PIL.__version__,
        }
        self._build_key = hashlib.sha256(json.dumps(build, sort_keys=True).encode()).hexdigest()[:16]
        index_root = Path(index_dir) if index_dir is not None else self._pages_file.parent / INDEX_DIR_NAME
        self.index_path = index_root / self._build_key
        index = None if rebuild else _load(self.index_path, self._pages_file, build)
        self.index_built = index is None
        if index is None:
            pages, fingerprint = read_pages(self._pages_file.parent)
            index = _build(pages, fingerprint, self._pages_file, build, self._stopwords)
            del pages
            try:
                _save(index, self.index_path)
            except OSError as error:
                warnings.warn(f"could not store the local search index at {str(self.index_path)!r} ({error}); "
                              "it is kept in memory only and will be rebuilt next time",
                              RuntimeWarning, stacklevel=2)
            else:
                # serve from the memory maps of what was stored, as every later load will, and free
                # the built arrays (None if pages.jsonl changed meanwhile: keep the built index)
                index = _load(self.index_path, self._pages_file, build) or index
        self._index = index
        recorded = index.manifest["pages_file"]
        self._stat = (recorded["size"], recorded["mtime_ns"])
        self._backend_id = (
            f"local:{index.manifest['corpus_digest'][:16]}:phash{HASH_VERSION}-t{threshold}-{crops}"
            f":text{TEXT_VERSION}{'-sw' if stopwords else ''}-k1={float(k1):g}-b={float(b):g}:{self._build_key[:8]}"
        )

    # ---------------------------------------------------------------------------------- facts

    @property
    def backend_id(self) -> str:
        """'local:' + corpus digest (pages.jsonl and image bytes) + threshold, tokenizer and BM25
        parameters + a digest of every other build parameter (library versions included)."""
        return self._backend_id

    @property
    def num_pages(self) -> int:
        return int(self._index.manifest["num_pages"])

    @property
    def num_images(self) -> int:
        return int(self._index.manifest["num_images"])

    @property
    def threshold(self) -> int:
        return self._threshold

    def __repr__(self) -> str:
        return f"LocalCorpusBackend({str(self._pages_file.parent)!r}, {self.num_pages} pages, {self.num_images} images)"

    # -------------------------------------------------------------------------------- queries

    def image_search(self, image: QueryImage | ImageLike, top_k: int) -> SearchResults:
        """Pages whose image is the query picture (within `threshold` bits), closest first."""
        try:
            pixels = image.pixels if isinstance(image, QueryImage) else load_rgb(image)
            if pixels.size == 0 or self._top_k(top_k) == 0:
                return SearchResults("image")
            self._check_unchanged()
            matches = self._index.hash_index.search(query_hash(Image.fromarray(pixels)), self._threshold, top_k,
                                                    self._hash_rows)
            items = []
            for match, record in zip(matches, self._records([match.page for match in matches])):
                start, end = (int(x) for x in self._index.thumb_offsets[match.image:match.image + 2])
                items.append(SearchItem(
                    title=record["title"], url=record["url"], snippet=lead_snippet(record["text"]),
                    thumbnail=EncodedImage(self._index.thumbs[start:end].tobytes()),
                ))
            return SearchResults("image", tuple(items))
        except Exception as error:  # queries never raise (SearchBackend contract)
            return SearchResults.failed("image", f"local image search failed: {error}")

    def text_search(self, query: str, top_k: int) -> SearchResults:
        """Pages ranked by BM25 for `query` (ties by url), each with an extractive summary."""
        try:
            if not isinstance(query, str):
                raise ValueError(f"query must be a string, got {type(query).__name__}")
            bm25 = self._index.bm25
            terms = tokenize(query, self._stopwords)
            if bm25 is None or not terms or self._top_k(top_k) == 0:
                return SearchResults("text")
            vocab = bm25.vocab_dict
            token_ids = [vocab[term] for term in terms if term in vocab]
            if not token_ids:
                return SearchResults("text")
            self._check_unchanged()
            pages = self._rank_text(bm25, token_ids, top_k)
            weights = self._idf(bm25, terms)
            items = []
            for record in self._records(pages):
                items.append(SearchItem(
                    title=record["title"], url=record["url"],
                    snippet=extractive_summary(record["text"], terms, weights),
                ))
            return SearchResults("text", tuple(items))
        except Exception as error:  # queries never raise (SearchBackend contract)
            return SearchResults.failed("text", f"local text search failed: {error}")

    # ------------------------------------------------------------------------------- helpers

    @staticmethod
    def _top_k(top_k: int) -> int:
        if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
            raise ValueError(f"top_k must be an int, got {top_k!r}")
        return max(0, int(top_k))

    def _check_unchanged(self) -> None:
        """Hits are read back from pages.jsonl by byte offset: refuse to answer from a file that
        changed since the index was built rather than return mismatched pages."""
        if stat_fingerprint(self._pages_file) != self._stat:
            raise ValueError(f"{str(self._pages_file)!r} changed since the index was built; "
                             "create a new LocalCorpusBackend to re-index it")

    def _records(self, pages: list[int]) -> list[dict[str, Any]]:
        spans = self._index.page_spans
        return read_page_records(self._pages_file, [(int(spans[page, 0]), int(spans[page, 1])) for page in pages])

    def _rank_text(self, bm25: Any, token_ids: list[int], top_k: int) -> list[int]:
        """Pages with a positive score, best first, ties by url; top_k of them.

        Scores are summed here (as bm25s does, query terms in order, so sums are reproducible to
        the bit) rather than by bm25s.retrieve, whose top-k leaves ties in an unspecified order."""
        data, indices, indptr = (bm25.scores[key] for key in ("data", "indices", "indptr"))
        scores = np.zeros(bm25.scores["num_docs"], dtype=np.float32)
        for token_id in token_ids:
            start, end = int(indptr[token_id]), int(indptr[token_id + 1])
            np.add.at(scores, indices[start:end], data[start:end])
        if top_k < scores.size:
            kth = np.partition(scores, scores.size - top_k)[scores.size - top_k]
            candidates = np.flatnonzero((scores >= kth) & (scores > 0))
        else:
            candidates = np.flatnonzero(scores > 0)
        order = np.lexsort((self._index.url_rank[candidates], -scores[candidates]))[:top_k]
        return [int(page) for page in candidates[order]]

    @staticmethod
    def _idf(bm25: Any, terms: list[str]) -> dict[str, float]:
        """Lucene BM25 idf of each query term (the weights of the summary's sentence scores)."""
        indptr = bm25.scores["indptr"]
        n_docs = bm25.scores["num_docs"]
        weights = {}
        for term in set(terms):
            token_id = bm25.vocab_dict.get(term)
            if token_id is not None:
                df = int(indptr[token_id + 1]) - int(indptr[token_id])
                weights[term] = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
        return weights
