"""`WikiTextSearch`: local BM25 text search over Search-R1's `wiki-18` Wikipedia passages.

Why: offline RL work on MMSearch-R1's task serves text search from a local Wikipedia index
(Search-R1's `wiki-18.jsonl`, 21M passages, JSONL rows ``{"id", "contents"}`` with contents
``"Title"\\ntext``) instead of a paid web search. This backend reads that file as it is: the index
is built once by streaming the file (`wiki_index`), persisted as a bm25s index and loaded with
memory maps, and passages are read back from the file by byte offset, so neither the passages nor
the score matrix sit in memory.

It is a text-only sibling of `LocalCorpusBackend`: image search returns a tool error. Combine it
with an image backend, e.g. MMSearch-R1's released image results imported as a bundle::

    CombinedSearch(CachedSearchBackend.replay("fvqa_test.zip"), WikiTextSearch("wiki-18.jsonl"))

Ranking: BM25 (bm25s "lucene" variant; k1=0.9, b=0.4 by default, the Pyserini/Lucene defaults
Search-R1's BM25 retriever runs with) over the same tokens as the local corpus backend, ties by
passage order in the file. Each hit: the passage title, a ``wiki18://<id>`` link, and an extractive
summary of the passage for the query.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch_gym.checks import require_bool, require_int, require_number
from mmsearch_gym.runs import write_bytes_atomic
from mmsearch_gym.search.bm25 import bm25_idf, load_bm25, rank_bm25
from mmsearch_gym.search.corpus import file_sha256, stat_fingerprint
from mmsearch_gym.search.summarize import TEXT_VERSION, extractive_summary, tokenize
from mmsearch_gym.search.types import QueryImage, SearchItem, SearchResults
from mmsearch_gym.search.wiki_index import (
    CHUNK_LINES, INDEX_FORMAT, WikiCorpusError, build_wiki_index, index_size_bytes, parse_line, split_contents,
)

try:
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError("WikiTextSearch needs bm25s: pip install 'mmsearch-gym[local]'") from _error

DEFAULT_K1 = 0.9
DEFAULT_B = 0.4
LINK_SCHEME = "wiki18://"


class _FileOrder:
    """Tie ranks for `rank_bm25` without an N-element array: a passage's rank is its position in the file."""

    def __getitem__(self, passages: np.ndarray) -> np.ndarray:
        return passages


_FILE_ORDER: Any = _FileOrder()


def default_index_root(corpus: Path) -> Path:
    """Where indexes of `corpus` are kept by default: ``<corpus file>.index/`` beside it."""
    return corpus.with_name(corpus.name + ".index")


def _rewrite_json(path: Path, value: dict[str, Any]) -> None:
    try:
        write_bytes_atomic(path, json.dumps(value, indent=1, sort_keys=True).encode(), mode=0o644)
    except OSError:  # a read-only index: the next load re-hashes the corpus, which is only slower
        pass


class WikiTextSearch:
    """BM25 text search over a wiki-18-format JSONL passage file.

    corpus: the JSONL file. index_dir: where indexes are kept (default ``<corpus>.index/``; each set
    of build parameters gets its own subdirectory). build: build the index when none is stored (or
    the corpus changed); False raises instead (e.g. for a 21M-passage corpus that should have been
    indexed beforehand). rebuild: build even when a current index is stored.
    stopwords: drop bm25s's English stopwords. k1, b: BM25 parameters.

    Construction raises ValueError (`WikiCorpusError`) for a missing or malformed corpus, naming the
    file and line; queries never raise: failures come back as `SearchResults.error`.
    """

    def __init__(self, corpus: str | os.PathLike[str], *, index_dir: str | os.PathLike[str] | None = None,
                 build: bool = True, rebuild: bool = False, stopwords: bool = True,
                 k1: float = DEFAULT_K1, b: float = DEFAULT_B, chunk_lines: int = CHUNK_LINES) -> None:
        for name, flag in (("build", build), ("rebuild", rebuild), ("stopwords", stopwords)):
            require_bool(name, flag)
        k1 = float(require_number("k1", k1, low=0.0))
        b = float(require_number("b", b, low=0.0, high=1.0))
        require_int("chunk_lines", chunk_lines, low=1)
        self._corpus = Path(corpus)
        if not self._corpus.is_file():
            raise WikiCorpusError(f"wiki corpus file not found: {str(self._corpus)!r}")
        self._stopwords: frozenset[str] = frozenset(STOPWORDS_EN) if stopwords else frozenset()
        self._build = {
            "format": INDEX_FORMAT, "text_version": TEXT_VERSION, "k1": k1, "b": b, "bm25s": bm25s.__version__,
            "stopwords": hashlib.sha256("\n".join(sorted(self._stopwords)).encode()).hexdigest()[:16],
        }
        build_key = hashlib.sha256(json.dumps(self._build, sort_keys=True).encode()).hexdigest()[:16]
        root = Path(index_dir) if index_dir is not None else default_index_root(self._corpus)
        self.index_path = root / build_key
        manifest = None if rebuild else self._load_manifest()
        self.index_built = manifest is None
        if manifest is None:
            if not build and not rebuild:
                raise WikiCorpusError(f"no current index of {str(self._corpus)!r} in {str(self.index_path)!r}; "
                                      "build it first (WikiTextSearch(corpus, build=True))")
            try:
                manifest = build_wiki_index(self._corpus, self.index_path, stopwords=self._stopwords, k1=k1, b=b,
                                            build=self._build, chunk_lines=chunk_lines)
            except OSError as error:
                raise WikiCorpusError(f"cannot build the index of {str(self._corpus)!r} in {str(self.index_path)!r} "
                                      f"({error}); give index_dir a writable directory") from None
        self._manifest = manifest
        self._stat = (manifest["corpus"]["size"], manifest["corpus"]["mtime_ns"])
        self._bm25 = load_bm25(self.index_path / "bm25")
        self._spans = np.asarray(np.load(self.index_path / "spans.npy", mmap_mode="r", allow_pickle=False))
        if self._bm25.scores["num_docs"] != manifest["num_docs"] or self._spans.shape != (manifest["num_docs"], 2):
            raise WikiCorpusError(f"wiki index {str(self.index_path)!r} is inconsistent; rebuild it (rebuild=True)")
        self._backend_id = (f"wiki18-bm25:{manifest['corpus']['sha256'][:16]}:text{TEXT_VERSION}"
                            f"{'-sw' if stopwords else ''}-k1={k1:g}-b={b:g}:{build_key[:8]}")

    def _load_manifest(self) -> dict[str, Any] | None:
        """The stored index's manifest when it matches the build parameters and the corpus is unchanged
        (same size and mtime, or same bytes); None when it must be built."""
        path = self.index_path / "manifest.json"
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
            if manifest.get("format") != INDEX_FORMAT or manifest.get("build") != self._build:
                return None
            recorded = manifest["corpus"]
            size, mtime_ns = stat_fingerprint(self._corpus)
            if (size, mtime_ns) != (recorded["size"], recorded["mtime_ns"]):
                if size != recorded["size"] or file_sha256(self._corpus) != recorded["sha256"]:
                    return None
                recorded["mtime_ns"] = mtime_ns  # same bytes, touched: remember the new mtime
                _rewrite_json(path, manifest)
            return dict(manifest)
        except (OSError, ValueError, KeyError, TypeError) as error:
            warnings.warn(f"rebuilding the wiki index at {str(self.index_path)!r}: it could not be read ({error})",
                          RuntimeWarning, stacklevel=3)
            return None

    # ---------------------------------------------------------------------------------- facts

    @property
    def backend_id(self) -> str:
        """'wiki18-bm25:' + corpus sha256 prefix + tokenizer and BM25 parameters + build digest."""
        return self._backend_id

    @property
    def num_passages(self) -> int:
        return int(self._manifest["num_docs"])

    @property
    def index_size_bytes(self) -> int:
        return index_size_bytes(self.index_path)

    def __repr__(self) -> str:
        return f"WikiTextSearch({str(self._corpus)!r}, {self.num_passages} passages)"

    # -------------------------------------------------------------------------------- queries

    def image_search(self, image: QueryImage, top_k: int) -> SearchResults:
        return SearchResults.failed("image", "the wiki-18 text index has no image search; combine it with an "
                                             "image backend (CombinedSearch)")

    def text_search(self, query: str, top_k: int) -> SearchResults:
        """Passages ranked by BM25 for `query` (ties by file order), each with an extractive summary."""
        try:
            if not isinstance(query, str):
                raise ValueError(f"query must be a string, got {type(query).__name__}")
            if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)):
                raise ValueError(f"top_k must be an int, got {top_k!r}")
            if stat_fingerprint(self._corpus) != self._stat:
                raise ValueError(f"{str(self._corpus)!r} changed since it was indexed; create a new WikiTextSearch")
            terms = tokenize(query, self._stopwords)
            vocab = self._bm25.vocab_dict
            token_ids = [vocab[term] for term in terms if term in vocab]
            if not token_ids or top_k <= 0:
                return SearchResults("text")
            weights = bm25_idf(self._bm25, terms)
            items = []
            for passage_id, contents in self._read(self.rank(token_ids, int(top_k))):
                title, text = split_contents(contents)
                items.append(SearchItem(title=title, url=f"{LINK_SCHEME}{passage_id}",
                                        snippet=extractive_summary(text or contents, terms, weights)))
            return SearchResults("text", tuple(items))
        except Exception as error:  # queries never raise (SearchBackend contract)
            return SearchResults.failed("text", f"wiki text search failed: {error}")

    def rank(self, token_ids: list[int], top_k: int) -> list[int]:
        """Passages with a positive score, best first, ties by file order; at most top_k of them."""
        return rank_bm25(self._bm25, token_ids, top_k, _FILE_ORDER)

    def _read(self, passages: list[int]) -> list[tuple[str, str]]:
        out = []
        with open(self._corpus, "rb") as handle:
            for passage in passages:
                start, end = (int(x) for x in self._spans[passage])
                handle.seek(start)
                out.append(parse_line(handle.read(end - start), self._corpus, -1))
        return out


__all__ = ["DEFAULT_B", "DEFAULT_K1", "WikiCorpusError", "WikiTextSearch", "default_index_root", "split_contents"]
