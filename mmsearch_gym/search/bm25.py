"""BM25 text ranking over a bm25s index, with results that never depend on timing or ties.

Why our own scoring loop: bm25s.retrieve's top-k leaves ties in an unspecified order, so equal scores
could come back in different orders; here scores are summed as bm25s does (query terms in order, so
sums are reproducible to the bit) and ties go to a caller-given rank (e.g. the sorted url). Loading
turns the memory-mapped score arrays into plain ndarray views (np.memmap's slicing is slow).
bm25s is an optional dependency (`mmsearch-gym[local]`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

try:
    import bm25s
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError("local text search needs bm25s: pip install 'mmsearch-gym[local]'") from _error

__all__ = ["bm25_idf", "build_bm25", "load_bm25", "rank_bm25"]


def build_bm25(token_lists: Iterable[list[str]], k1: float, b: float) -> Any:
    """A Lucene-variant bm25s index of the documents' token lists; None when no document has a token."""
    vocab: dict[str, int] = {}
    corpus_ids: list[list[int]] = []
    for tokens in token_lists:
        # dict lookups return the same int objects, so token lists cost a pointer per token
        corpus_ids.append([vocab.setdefault(token, len(vocab)) for token in tokens])
    if not vocab:
        return None
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index((corpus_ids, vocab), create_empty_token=False, show_progress=False)
    return retriever


def load_bm25(path: str | Path) -> Any:
    """A bm25s index saved with ``bm25.save(path)``, memory-mapped, its score arrays as plain views."""
    bm25 = bm25s.BM25.load(str(path), mmap=True, load_corpus=False, show_progress=False)
    for key in ("data", "indices", "indptr"):
        bm25.scores[key] = np.asarray(bm25.scores[key])
    return bm25


def rank_bm25(bm25: Any, token_ids: list[int], top_k: int, tie_rank: np.ndarray) -> list[int]:
    """Documents with a positive score, best first, ties by `tie_rank` (smaller first); top_k of them.

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
    order = np.lexsort((tie_rank[candidates], -scores[candidates]))[:top_k]
    return [int(page) for page in candidates[order]]


def bm25_idf(bm25: Any, terms: list[str]) -> dict[str, float]:
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
