"""WikiTextSearch over a wiki-18-format corpus: streamed build, bm25s-compatible index, known queries."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

bm25s = pytest.importorskip("bm25s")

from mmsearch_gym.search import wiki_index  # noqa: E402
from mmsearch_gym.search.summarize import tokenize  # noqa: E402
from mmsearch_gym.search.wiki import WikiCorpusError, WikiTextSearch, split_contents  # noqa: E402

SYLLABLES = ["ka", "lo", "mi", "ren", "tas", "vor", "quel", "dun", "bri", "sa", "tho", "nex", "pal", "ori", "zem"]
KNOWN = [
    ("Velmora Bridge", ("The Velmora Bridge is a stone arch bridge over the Lisk river. It was built in 1887 "
                        "by the engineer Adela Strom.")),
    ("Ardent Guild", "The Ardent Guild is a society of clockmakers. Its tower was built by Jorun Maelis in 1702."),
    ("Quorrin Lighthouse", "Quorrin Lighthouse stands on a granite cape. Its lamp was first lit in 1911."),
]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3)))


def write_wiki(path: Path, n_random: int = 3000, seed: int = 0) -> dict[str, str]:
    """A wiki-18-format file: random passages with the KNOWN ones spread among them; returns title -> id."""
    rng = random.Random(seed)
    rows = []
    for index in range(n_random):
        title = f"{_word(rng).title()} {_word(rng).title()}"
        text = " ".join(_word(rng) for _ in range(rng.randint(20, 60))) + "."
        rows.append((title, text))
    for offset, (title, text) in enumerate(KNOWN):
        rows.insert(offset * n_random // len(KNOWN) + 7, (title, text))
    ids = {}
    with open(path, "w", encoding="utf-8") as stream:
        for number, (title, text) in enumerate(rows):
            stream.write(json.dumps({"id": str(number), "contents": f'"{title}"\n{text}'}) + "\n")
            if number % 997 == 0:
                stream.write("\n")  # blank lines are skipped
            ids.setdefault(title, str(number))
    return ids


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("wiki") / "wiki-18.jsonl"
    return path, write_wiki(path)


def test_known_queries_retrieve_the_right_titles(corpus: tuple[Path, dict[str, str]]) -> None:
    path, ids = corpus
    search = WikiTextSearch(path, index_dir=path.parent / "idx")
    assert search.num_passages == 3000 + len(KNOWN) and search.index_built
    for query, title in (("Velmora Bridge built", "Velmora Bridge"), ("who built the Ardent Guild tower", "Ardent Guild"),
                         ("When was Quorrin lighthouse lamp lit?", "Quorrin Lighthouse")):
        results = search.text_search(query, 3)
        assert results.error is None and results.items[0].title == title
        assert results.items[0].url == f"wiki18://{ids[title]}"
        assert title.split()[0] in results.items[0].snippet
    assert search.text_search("zzzz unknownword", 5).items == ()
    assert search.image_search(None, 5).error  # text only
    again = WikiTextSearch(path, index_dir=path.parent / "idx", build=False)
    assert not again.index_built and again.backend_id == search.backend_id
    assert again.text_search("Velmora Bridge built", 3) == search.text_search("Velmora Bridge built", 3)


def test_streamed_build_equals_bm25s_own_index_and_is_chunk_independent(
        corpus: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = corpus
    seen: list[int] = []
    original = wiki_index._tokenize_chunk

    def spy(texts, vocab, stopwords):
        seen.append(len(texts))
        return original(texts, vocab, stopwords)

    monkeypatch.setattr(wiki_index, "_tokenize_chunk", spy)
    small = WikiTextSearch(path, index_dir=path.parent / "small", chunk_lines=211)
    assert max(seen) == 211 and len(seen) > 10  # never more than one chunk of passages in memory
    one = WikiTextSearch(path, index_dir=path.parent / "one", chunk_lines=100_000)
    for key in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(small._bm25.scores[key], one._bm25.scores[key])

    vocab = small._bm25.vocab_dict
    stop = small._stopwords
    corpus_ids = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                corpus_ids.append([vocab[token] for token in tokenize(json.loads(line)["contents"], stop)])
    reference = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    reference.index((corpus_ids, vocab), create_empty_token=False, show_progress=False)
    ours = small._bm25.scores
    np.testing.assert_array_equal(ours["indptr"], reference.scores["indptr"])
    for column in range(len(vocab)):
        start, end = ours["indptr"][column], ours["indptr"][column + 1]
        order = np.argsort(reference.scores["indices"][start:end])
        np.testing.assert_array_equal(ours["indices"][start:end], reference.scores["indices"][start:end][order])
        np.testing.assert_allclose(ours["data"][start:end], reference.scores["data"][start:end][order], rtol=1e-6)
    loaded = bm25s.BM25.load(str(small.index_path / "bm25"), mmap=True)  # bm25s reads it as its own
    query = [vocab["velmora"], vocab["bridge"]]
    docs, _ = loaded.retrieve([["velmora", "bridge"]], k=1, show_progress=False)
    assert int(docs[0][0]) == small.rank(query, 1)[0]


def test_changed_corpus_is_reindexed_and_build_false_refuses(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    write_wiki(path, n_random=50)
    first = WikiTextSearch(path)
    assert (tmp_path / "w.jsonl.index").is_dir()
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(json.dumps({"id": "new", "contents": '"Zentor Abbey"\nZentor Abbey was founded in 1120.'}) + "\n")
    assert first.text_search("Zentor Abbey", 1).error  # refuses to answer from a changed file
    with pytest.raises(WikiCorpusError, match="no current index"):
        WikiTextSearch(path, build=False)
    second = WikiTextSearch(path)
    assert second.index_built and second.backend_id != first.backend_id
    assert second.text_search("Zentor Abbey founded", 1).items[0].title == "Zentor Abbey"
    os.utime(path, ns=(1, 1))  # touched, same bytes: no rebuild
    assert not WikiTextSearch(path).index_built


@pytest.mark.parametrize(("line", "pattern"), [
    ("not json", r"line 2: malformed JSON"),
    ("[1, 2]", r"line 2: expected a JSON object"),
    ('{"id": "1"}', r"line 2: field 'contents' must be a string"),
    ('{"id": null, "contents": "x"}', r"line 2: field 'id' must be a string or int"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, pattern: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "0", "contents": '"A"\nb'}) + "\n" + line + "\n")
    with pytest.raises(WikiCorpusError, match=pattern):
        WikiTextSearch(path)
    assert not any((tmp_path / "bad.jsonl.index").glob("*/manifest.json"))


def test_empty_or_missing_corpus(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(WikiCorpusError, match="holds no passages"):
        WikiTextSearch(tmp_path / "empty.jsonl")
    with pytest.raises(WikiCorpusError, match="not found"):
        WikiTextSearch(tmp_path / "missing.jsonl")


def test_split_contents() -> None:
    assert split_contents('"Paris"\nParis is the capital.') == ("Paris", "Paris is the capital.")
    assert split_contents("no title line") == ("", "no title line")
    assert split_contents('"A "quoted" title"\ntext\nmore') == ('A "quoted" title', "text\nmore")


def test_unwritable_index_dir_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    write_wiki(path, n_random=20)
    (tmp_path / "blocker").write_text("a file where the index directory should go")
    with pytest.raises(WikiCorpusError, match=r"cannot build the index .*give index_dir a writable directory"):
        WikiTextSearch(path, index_dir=tmp_path / "blocker" / "idx")
