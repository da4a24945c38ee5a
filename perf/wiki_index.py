"""Build time, index size and query latency of WikiTextSearch on generated wiki-18-format passages.

    .venv/bin/python perf/wiki_index.py --sizes 1000000

For each size N it writes N passages in Search-R1's wiki-18 format (``{"id", "contents"}``, contents
``"Title"\\ntext``, 100 Zipf-distributed words each: wiki-18's passages are 100-word DPR chunks),
builds the index by streaming the file in a child process (timed; its peak anonymous memory is
sampled, since the point of the streamed build is that memory grows with the vocabulary, not with
N), loads it again (timed) and reports the size on disk and median query latencies:

- text_search end to end (BM25 over the memory-mapped index + reading the hits from the JSONL by
  byte offset + extractive summaries);
- our BM25 ranking alone, and bm25s's own `retrieve` on the same index as the floor
  (docs/measured-floors.md asks perf scripts to re-measure floors in the same run).

Scale to the real corpus (21M passages) linearly: build time and disk size grow with the number of
(passage, distinct term) pairs, query time with the posting lists of the query terms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from local_retrieval import interleaved_ms  # noqa: E402  (perf/ is the script's directory)

from mmsearch_gym.search.summarize import tokenize  # noqa: E402
from mmsearch_gym.search.wiki import WikiTextSearch  # noqa: E402

SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"]
BATCH = 20_000
BUILD_CHILD = """
import resource, sys, threading, time
sys.path.insert(0, sys.argv[1])
from mmsearch_gym.search.wiki import WikiTextSearch

def rss_anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")

peak = [rss_anon_mb()]
imported = peak[0]
done = threading.Event()

def sample():
    while not done.wait(0.05):
        peak[0] = max(peak[0], rss_anon_mb())

threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
assert WikiTextSearch(sys.argv[2]).index_built
built = time.perf_counter() - start
done.set()
print(imported, max(peak[0], rss_anon_mb()), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, built)
"""


def vocabulary(size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` distinct pseudo-words of 2-4 syllables."""
    syllables = np.array(SYLLABLES)
    words: set[str] = set()
    while len(words) < size:
        counts = rng.integers(2, 5, size)
        parts = syllables[rng.integers(0, len(syllables), (size, 4))].tolist()
        words.update("".join(row[:count]) for row, count in zip(parts, counts.tolist()))
    return np.array(sorted(words)[:size])


def write_corpus(path: Path, n: int, words: int, vocab_size: int, seed: int = 0) -> list[str]:
    """Write the file in batches (never all passages in memory); returns a sample of passage texts."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(vocab_size, rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    samples: list[str] = []
    with open(path, "w", encoding="utf-8") as stream:
        for start in range(0, n, BATCH):
            count = min(BATCH, n - start)
            drawn = vocab[rng.choice(len(vocab), size=(count, words + 3), p=weights)]
            lines = []
            for row, tokens in enumerate(drawn.tolist()):
                title = " ".join(tokens[:3]).title()
                text = " ".join(tokens[3:])
                lines.append(json.dumps({"id": str(start + row), "contents": f'"{title}"\n{text}'}))
                if len(samples) < 1000:
                    samples.append(text)
            stream.write("\n".join(lines) + "\n")
    return samples


def run(n: int, args: argparse.Namespace, work: Path) -> None:
    corpus = work / f"wiki-{n}.jsonl"
    start = time.perf_counter()
    samples = write_corpus(corpus, n, args.words, args.vocab)
    generated = time.perf_counter() - start
    # the build runs in a child process, so that its peak RSS is its own (not the generator's)
    child = subprocess.run([sys.executable, "-c", BUILD_CHILD, str(ROOT), str(corpus)], check=True,
                           capture_output=True, text=True)
    import_anon, peak_anon, peak_rss, built = (float(value) for value in child.stdout.split()[-4:])
    start = time.perf_counter()
    search = WikiTextSearch(corpus, build=False)
    loaded = time.perf_counter() - start
    print(f"\n== {n:,} passages of {args.words} words (vocabulary {args.vocab:,}), corpus file "
          f"{corpus.stat().st_size / 1e6:.0f} MB, generated in {generated:.1f} s")
    print(f"   index build {built:.1f} s ({n / built:,.0f} passages/s), load {loaded * 1e3:.0f} ms, "
          f"on disk {search.index_size_bytes / 1e6:.0f} MB\n   build process memory: peak anonymous RSS "
          f"{peak_anon:.0f} MB ({import_anon:.0f} MB after imports); peak RSS {peak_rss:.0f} MB (including "
          "pages of the memory-mapped scratch and index files, which the OS can drop)")

    rng = np.random.default_rng(1)
    queries = []
    for _ in range(args.queries):
        words = samples[int(rng.integers(len(samples)))].split()
        queries.append(" ".join(rng.choice(words, 6)))
    bm25 = search._bm25
    token_lists = [[t for t in tokenize(q, search._stopwords) if t in bm25.vocab_dict] for q in queries]
    token_ids = [[bm25.vocab_dict[t] for t in tokens] for tokens in token_lists]
    assert all(r.error is None and r.items for r in (search.text_search(q, 5) for q in queries[:20]))
    nq = len(queries)
    ms = interleaved_ms({
        "text_search": lambda i: search.text_search(queries[i % nq], 5),
        "rank": lambda i: search.rank(token_ids[i % nq], 5),
        "floor": lambda i: bm25.retrieve([token_lists[i % nq]], k=5, show_progress=False),
    }, args.queries)
    print(f"   text_search (6-word queries, top 5) {ms['text_search']}; our BM25 ranking {ms['rank']}; "
          f"floor: bm25s.retrieve {ms['floor']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000", help="comma-separated passage counts")
    parser.add_argument("--words", type=int, default=100, help="words per passage")
    parser.add_argument("--vocab", type=int, default=200_000, help="distinct words (Zipf-distributed)")
    parser.add_argument("--queries", type=int, default=200, help="timed queries per metric")
    parser.add_argument("--workdir", type=Path, default=None, help="where corpora go (default: a temp dir)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    work = Path(tempfile.mkdtemp(prefix="wiki-perf-", dir=args.workdir))
    try:
        for n in sizes:
            run(n, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
