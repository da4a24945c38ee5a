"""Building a BM25 index over a Wikipedia passage file in Search-R1's `wiki-18` format, streaming.

Why streaming: `wiki-18.jsonl` holds 21M passages (~13 GB); bm25s's own `index()` wants every
document's token list in memory at once, which is tens of GB of Python objects. Here the file is
read in chunks of lines, each chunk is tokenised and reduced to (term id, term frequency) arrays
that go to scratch files, and the score matrix is then assembled column by column into memory-mapped
arrays. Peak memory is the vocabulary, a few per-document and per-term arrays, and one chunk.

Format: one JSON object per line, ``{"id": ..., "contents": "\\"Title\\"\\ntext"}`` (the title line in
double quotes, as Search-R1's corpus has it). The whole `contents` is indexed, as Search-R1's BM25
(Pyserini) indexes its `contents` field. Output: a bm25s index directory (`bm25/`: the CSC score
matrix, vocabulary and parameters in bm25s's own file layout, loadable with
``bm25s.BM25.load(..., mmap=True)``), ``spans.npy`` (byte range of each passage's line, so hits are
read back from the corpus file) and ``manifest.json`` (written last). Scores follow bm25s's
"lucene" method exactly: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), tf part
tf / (tf + k1 (1 - b + b dl / avgdl)).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from mmsearch_gym.checks import parse_json_object
from mmsearch_gym.runs import replace_directory
from mmsearch_gym.search.summarize import tokenize

INDEX_FORMAT = 1
CHUNK_LINES = 50_000
_TF_MAX = np.iinfo(np.uint16).max  # a term frequency above this saturates BM25 anyway


class WikiCorpusError(ValueError):
    """The corpus file is missing, empty or has a malformed line (the message names file and line)."""


def split_contents(contents: str) -> tuple[str, str]:
    """('Title', 'text') of a wiki-18 `contents` string ('"Title"\\ntext'); a string without a title
    line gives ('', contents)."""
    head, newline, text = contents.partition("\n")
    if not newline:
        return "", contents
    if len(head) >= 2 and head.startswith('"') and head.endswith('"'):
        head = head[1:-1]
    return head.strip(), text


def parse_line(line: bytes, path: Path, number: int) -> tuple[str, str]:
    """(id, contents) of one corpus line; WikiCorpusError naming the file and line otherwise."""
    record = parse_json_object(line, f"{str(path)!r} line {number}", error=WikiCorpusError)
    contents = record.get("contents")
    if not isinstance(contents, str):
        raise WikiCorpusError(f"{str(path)!r} line {number}: field 'contents' must be a string, "
                              f"got {type(contents).__name__}")
    passage_id = record.get("id")
    if isinstance(passage_id, bool) or not isinstance(passage_id, (str, int)):
        raise WikiCorpusError(f"{str(path)!r} line {number}: field 'id' must be a string or int, got {passage_id!r}")
    return str(passage_id), contents


def _lines(handle: BinaryIO, hasher: Any) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, line) of every non-blank line, hashing every byte read."""
    offset = 0
    for number, line in enumerate(handle, start=1):
        hasher.update(line)
        if line.strip():
            yield number, offset, line
        offset += len(line)


class _Scratch:
    """Append-only scratch arrays on disk (term ids, term frequencies, per-document counts)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.files = {name: open(directory / f"{name}.bin", "wb") for name in ("terms", "tfs", "nnz", "lengths", "spans")}

    def append(self, name: str, array: np.ndarray) -> None:
        array.tofile(self.files[name])

    def close(self) -> None:
        for handle in self.files.values():
            handle.close()

    def read(self, name: str, dtype: Any) -> np.ndarray:
        path = self.directory / f"{name}.bin"
        if path.stat().st_size == 0:
            return np.zeros(0, dtype=dtype)
        return np.asarray(np.memmap(path, dtype=dtype, mode="r"))


def new_vocabulary() -> defaultdict[str, int]:
    """token -> id, where looking up a new token gives it the next id."""
    vocab: defaultdict[str, int] = defaultdict()
    vocab.default_factory = vocab.__len__
    return vocab


def _tokenize_chunk(texts: list[str], vocab: defaultdict[str, int], stopwords: Collection[str]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(terms, tfs, nnz per document, length per document) of a chunk, sorted by document then term."""
    lengths = np.empty(len(texts), dtype=np.int64)
    ids: list[int] = []
    lookup = vocab.__getitem__  # a defaultdict numbering new tokens: the mapping loop runs in C
    for position, text in enumerate(texts):
        tokens = tokenize(text, stopwords)
        lengths[position] = len(tokens)
        ids.extend(map(lookup, tokens))
    doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
    keys, tfs = np.unique((doc << 32) | np.asarray(ids, dtype=np.int64), return_counts=True)
    nnz = np.bincount(keys >> 32, minlength=len(texts)) if keys.size else np.zeros(len(texts), np.int64)
    return ((keys & 0xFFFFFFFF).astype(np.int32), np.minimum(tfs, _TF_MAX).astype(np.uint16),
            nnz.astype(np.int32), lengths.astype(np.int32))


def _scatter_scores(scratch: _Scratch, target: Path, df: np.ndarray, lengths: np.ndarray, k1: float, b: float
                    ) -> np.ndarray:
    """Write the CSC score matrix (columns = terms, rows = passages) into bm25s's .npy files; returns indptr."""
    n_docs = int(lengths.size)
    idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)  # bm25s stores idf as float32
    avgdl = float(lengths.mean())
    indptr = np.zeros(df.size + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    total = int(indptr[-1])
    data = np.lib.format.open_memmap(target / "data.csc.index.npy", mode="w+", dtype=np.float32, shape=(total,))
    indices = np.lib.format.open_memmap(target / "indices.csc.index.npy", mode="w+", dtype=np.int32, shape=(total,))
    write = indptr[:-1].copy()
    terms_all, tfs_all = scratch.read("terms", np.int32), scratch.read("tfs", np.uint16)
    nnz = scratch.read("nnz", np.int32).astype(np.int64)
    doc_start = 0
    entry_start = 0
    per_step = CHUNK_LINES
    while doc_start < n_docs:
        doc_end = min(n_docs, doc_start + per_step)
        count = int(nnz[doc_start:doc_end].sum())
        terms = np.asarray(terms_all[entry_start:entry_start + count], dtype=np.int64)
        tfs = np.asarray(tfs_all[entry_start:entry_start + count], dtype=np.float64)
        docs = np.repeat(np.arange(doc_start, doc_end, dtype=np.int64), nnz[doc_start:doc_end])
        norm = k1 * ((1 - b) + b * lengths[docs].astype(np.float64) / avgdl)
        scores = (idf[terms].astype(np.float64) * (tfs / (norm + tfs))).astype(np.float32)
        order = np.argsort(terms, kind="stable")  # documents stay ascending within each column
        sorted_terms = terms[order]
        starts = np.flatnonzero(np.r_[True, sorted_terms[1:] != sorted_terms[:-1]]) if count else np.zeros(0, np.int64)
        run_lengths = np.diff(np.r_[starts, count])
        rank = np.arange(count, dtype=np.int64) - np.repeat(starts, run_lengths)
        positions = write[sorted_terms] + rank
        data[positions] = scores[order]
        indices[positions] = docs[order].astype(np.int32)
        write[sorted_terms[starts]] += run_lengths
        doc_start, entry_start = doc_end, entry_start + count
    data.flush()
    indices.flush()
    del data, indices
    return indptr


def build_wiki_index(corpus: Path, target: Path, *, stopwords: Collection[str], k1: float, b: float,
                     build: dict[str, Any], chunk_lines: int = CHUNK_LINES) -> dict[str, Any]:
    """Build the index of `corpus` into the directory `target` (replaced atomically); returns its manifest."""
    stat = corpus.stat()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
    try:
        scratch_dir = staging / "scratch"
        scratch_dir.mkdir()
        scratch = _Scratch(scratch_dir)
        vocab = new_vocabulary()
        df = np.zeros(0, dtype=np.int64)
        hasher = hashlib.sha256()
        n_docs = 0
        try:
            with open(corpus, "rb") as handle:
                texts: list[str] = []
                spans: list[tuple[int, int]] = []

                def flush() -> None:
                    nonlocal df
                    terms, tfs, nnz, lengths = _tokenize_chunk(texts, vocab, stopwords)
                    if df.size < len(vocab):
                        df = np.concatenate([df, np.zeros(len(vocab) - df.size, dtype=np.int64)])
                    df += np.bincount(terms, minlength=df.size)[:df.size] if terms.size else 0
                    for name, array in (("terms", terms), ("tfs", tfs), ("nnz", nnz), ("lengths", lengths),
                                        ("spans", np.asarray(spans, dtype=np.int64).reshape(-1, 2))):
                        scratch.append(name, array)
                    texts.clear()
                    spans.clear()

                for number, offset, line in _lines(handle, hasher):
                    texts.append(parse_line(line, corpus, number)[1])
                    spans.append((offset, offset + len(line)))
                    n_docs += 1
                    if len(texts) >= chunk_lines:
                        flush()
                if texts:
                    flush()
        finally:
            scratch.close()
        if n_docs == 0:
            raise WikiCorpusError(f"wiki corpus {str(corpus)!r} holds no passages")
        if (corpus.stat().st_size, corpus.stat().st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            raise WikiCorpusError(f"wiki corpus {str(corpus)!r} changed while it was being indexed")
        lengths = scratch.read("lengths", np.int32)
        bm25_dir = staging / "bm25"
        bm25_dir.mkdir()
        indptr = _scatter_scores(scratch, bm25_dir, df, lengths, k1, b)
        np.save(bm25_dir / "indptr.csc.index.npy", indptr, allow_pickle=False)
        np.save(staging / "spans.npy", scratch.read("spans", np.int64).reshape(-1, 2), allow_pickle=False)
        del lengths, indptr
        shutil.rmtree(scratch_dir)
        with open(bm25_dir / "vocab.index.json", "w", encoding="utf-8") as stream:
            stream.write(json.dumps(vocab, ensure_ascii=False))  # one C-encoded string: json.dump streams slowly
        params = {"k1": k1, "b": b, "delta": 0.5, "method": "lucene", "idf_method": "lucene", "dtype": "float32",
                  "int_dtype": "int32", "num_docs": n_docs, "version": build.get("bm25s", ""), "backend": "numpy"}
        (bm25_dir / "params.index.json").write_text(json.dumps(params, indent=4))
        manifest = {
            "format": INDEX_FORMAT, "build": build, "num_docs": n_docs, "vocab_size": len(vocab),
            "corpus": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": hasher.hexdigest()},
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        replace_directory(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def index_size_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
