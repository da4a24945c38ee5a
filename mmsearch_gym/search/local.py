"""`LocalCorpusBackend`: real, offline, deterministic retrieval over a corpus directory (DESIGN §5).

Image search: perceptual hashes of every page image and of crops of it, matched by Hamming distance
under a threshold (`search.phash`). Text search: BM25 (bm25s) over title + text, tokenised by
`summarize.tokenize`, with deterministic tie-breaking (`search.bm25`); each hit's snippet is an
extractive summary of the page for the query.

The index is built once and persisted under `<corpus>/.index/<build key>/` (`search.local_index`);
texts are not kept in memory: hits are read back from pages.jsonl by byte offset. bm25s and imagehash
are optional dependencies (`mmsearch-gym[local]`), imported only by these modules. The names of the
split modules stay importable from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import PIL
from PIL import Image

from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.imaging import ImageLike, load_rgb
from mmsearch_gym.search.corpus import pages_path, read_page_records, read_pages, stat_fingerprint
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

from mmsearch_gym.search.bm25 import bm25_idf, rank_bm25
from mmsearch_gym.search.local_index import (INDEX_DIR_NAME, INDEX_FORMAT, THUMBNAIL_MAX_SIDE, THUMBNAIL_QUALITY,
                                             LocalIndex, build_index, load_index, save_index)
from mmsearch_gym.search.phash import (CROP_MODES, CROPS, DEFAULT_THRESHOLD, HASH_ROWS, HASH_VERSION, HashIndex,
                                       HashMatch, index_hashes, popcount64, query_hash)

__all__ = [
    "CROPS", "CROP_MODES", "DEFAULT_THRESHOLD", "HASH_ROWS", "HASH_VERSION", "HashIndex", "HashMatch",
    "INDEX_DIR_NAME", "INDEX_FORMAT", "LocalCorpusBackend", "LocalIndex", "THUMBNAIL_MAX_SIDE",
    "THUMBNAIL_QUALITY", "index_hashes", "popcount64", "query_hash",
]


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
        threshold = require_int("threshold", threshold, low=0, high=64)
        if crops not in CROP_MODES:
            raise ValueError(f"crops must be one of {sorted(CROP_MODES)}, got {crops!r}")
        k1 = require_number("k1", k1, low=0.0)
        b = require_number("b", b, low=0.0, high=1.0)
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
        index = None if rebuild else load_index(self.index_path, self._pages_file, build)
        self.index_built = index is None
        if index is None:
            pages, fingerprint = read_pages(self._pages_file.parent)
            index = build_index(pages, fingerprint, self._pages_file, build, self._stopwords)
            del pages
            try:
                save_index(index, self.index_path)
            except OSError as error:
                warnings.warn(f"could not store the local search index at {str(self.index_path)!r} ({error}); "
                              "it is kept in memory only and will be rebuilt next time",
                              RuntimeWarning, stacklevel=2)
            else:
                # serve from the memory maps of what was stored, as every later load will, and free
                # the built arrays (None if pages.jsonl changed meanwhile: keep the built index)
                index = load_index(self.index_path, self._pages_file, build) or index
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
            top_k = require_int("top_k", top_k, low=1)
            if pixels.size == 0:
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
            top_k = require_int("top_k", top_k, low=1)
            bm25 = self._index.bm25
            terms = tokenize(query, self._stopwords)
            if bm25 is None or not terms:
                return SearchResults("text")
            vocab = bm25.vocab_dict
            token_ids = [vocab[term] for term in terms if term in vocab]
            if not token_ids:
                return SearchResults("text")
            self._check_unchanged()
            pages = rank_bm25(bm25, token_ids, top_k, self._index.url_rank)
            weights = bm25_idf(bm25, terms)
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

    def _check_unchanged(self) -> None:
        """Hits are read back from pages.jsonl by byte offset: refuse to answer from a file that
        changed since the index was built rather than return mismatched pages."""
        if stat_fingerprint(self._pages_file) != self._stat:
            raise ValueError(f"{str(self._pages_file)!r} changed since the index was built; "
                             "create a new LocalCorpusBackend to re-index it")

    def _records(self, pages: list[int]) -> list[dict[str, Any]]:
        spans = self._index.page_spans
        return read_page_records(self._pages_file, [(int(spans[page, 0]), int(spans[page, 1])) for page in pages])
