"""Tokenising and extractive summaries for the local backend's text search.

Why a module of its own, free of optional dependencies: the tokenizer decides what BM25 indexes and
the summarizer decides what the model reads, so both must be exactly reproducible (a change here
changes results and must bump `TEXT_VERSION`, which is part of the backend id), and both are plain
Python that tests can exercise without bm25s installed.

Summaries are extractive: the page's own sentences that best match the query, in page order. No
model is involved, so the same page and query always give the same text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Collection, Mapping, Sequence

# Bump when tokenize, split_sentences, lead_snippet or extractive_summary change their output.
TEXT_VERSION = 1

SUMMARY_MAX_SENTENCES = 3
SUMMARY_MAX_CHARS = 400
LEAD_SNIPPET_CHARS = 200

_TOKEN = re.compile(r"[^\W_]+")
# ASCII fast path of _TOKEN (8x faster, same tokens): every ASCII non-alphanumeric becomes a space.
_ASCII_SEPARATORS = str.maketrans({chr(i): " " for i in range(128) if not chr(i).isalnum()})
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n")
_SENTENCE_BREAK = re.compile(r"[.!?]\s+")
_ELLIPSIS = "…"


def tokenize(text: str, stopwords: Collection[str] = ()) -> list[str]:
    """Lower-cased alphanumeric runs of the NFKC-normalised text, minus `stopwords`, in text order.

    Splitting on every non-alphanumeric character (underscore included) keeps the rule simple and
    language-agnostic; NFKC makes full-width and compatibility characters match their plain forms.
    """
    if text.isascii():
        tokens = text.lower().translate(_ASCII_SEPARATORS).split()
    else:
        tokens = _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())
    if stopwords:
        return [token for token in tokens if token not in stopwords]
    return tokens


def _collapse(text: str) -> str:
    return " ".join(text.split())


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters at a word boundary, with an ellipsis when cut."""
    if max_chars <= 0:
        return ""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars - 1]
    space = cut.rfind(" ")
    if space >= max_chars // 2:  # don't throw away most of the text to avoid splitting one long word
        cut = cut[:space]
    return cut.rstrip() + _ELLIPSIS


def lead_snippet(text: str, max_chars: int = LEAD_SNIPPET_CHARS) -> str:
    """The page's opening text (whitespace collapsed), used where there is no query to match."""
    head = text[:4 * max_chars + 16]  # collapse only what can be shown, unless whitespace ate it
    collapsed = _collapse(head)
    if len(collapsed) <= max_chars and len(head) < len(text):
        collapsed = _collapse(text)
    return truncate(collapsed, max_chars)


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` (whitespace collapsed), split after . ! ? followed by whitespace and at
    blank lines."""
    sentences = []
    for paragraph in (_PARAGRAPH_BREAK.split(text) if "\n" in text else (text,)):
        start = 0
        for match in _SENTENCE_BREAK.finditer(paragraph):
            sentences.append(_collapse(paragraph[start:match.start() + 1]))
            start = match.end()
        sentences.append(_collapse(paragraph[start:]))
    return [sentence for sentence in sentences if sentence]


def extractive_summary(
    text: str,
    query_terms: Sequence[str],
    term_weights: Mapping[str, float] | None = None,
    max_sentences: int = SUMMARY_MAX_SENTENCES,
    max_chars: int = SUMMARY_MAX_CHARS,
) -> str:
    """The sentences of `text` that best match the query, in page order, within the limits.

    A sentence scores the sum over the distinct query terms it contains of the term's weight (the
    corpus IDF when given, else 1) times 1 + log(occurrences), so rare query words dominate and
    repetition helps only a little. Sentences are taken best first, ties going to the earlier
    sentence; one that would exceed `max_chars` is skipped, except that the best one is always kept
    (truncated if it alone is too long). With no matching sentence the page's opening is returned,
    so a hit never comes back with an empty summary.
    """
    sentences = split_sentences(text)
    if not sentences:
        return ""
    terms = frozenset(query_terms)
    scored: list[tuple[float, int]] = []
    if terms:
        for position, sentence in enumerate(sentences):
            tokens = tokenize(sentence)
            present = terms.intersection(tokens)  # set and list.count work in C: this loop is hot
            if present:
                score = sum(
                    (term_weights.get(term, 0.0) if term_weights is not None else 1.0)
                    * (1.0 + math.log(tokens.count(term)))
                    for term in sorted(present)
                )
                if score > 0:
                    scored.append((score, position))
    if not scored:
        return lead_snippet(" ".join(sentences), max_chars)
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    chosen: list[int] = []
    used = 0
    for _, position in scored:
        if len(chosen) >= max_sentences:
            break
        length = len(sentences[position]) + (1 if chosen else 0)
        if not chosen or used + length <= max_chars:
            chosen.append(position)
            used += length
    chosen.sort()
    return truncate(" ".join(sentences[position] for position in chosen), max_chars)
