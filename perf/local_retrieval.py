"""Build time and query latency of LocalCorpusBackend on synthetic corpora.

    .venv/bin/python perf/local_retrieval.py --sizes 1000,10000,100000

For each size N it writes a corpus of N pages (~200 words of Zipf-distributed synthetic text each),
builds the index (timed), loads it again (timed), and reports median latencies:

- text: `text_search` end to end (BM25 + reading the hits + extractive summaries), our BM25 ranking
  alone, and bm25s's own `retrieve` on the same index as the floor (docs/measured-floors.md
  asks perf scripts to re-measure floors in the same run). Targets: <= 2 ms at 100k.
- image: phash of one 224x224 query + nearest neighbours over the index hashes (4 per image with the
  default crops="centre", 8 with crops="all").
  Hashing N real images is slow, so corpora above --real-images-max get no images and the image index
  is N random hashes per row instead; up to that size pages carry real pattern images and
  `image_search` is also timed end to end (with thumbnails). Target: <= 1.5 ms at 100k.

Why synthetic data: the numbers should depend on the corpus size only, and be reproducible offline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsearch_gym.search.local import (  # noqa: E402
    CROP_MODES,
    HASH_ROWS,
    HashIndex,
    LocalCorpusBackend,
    popcount64,
    query_hash,
)
from mmsearch_gym.search.bm25 import rank_bm25  # noqa: E402
from mmsearch_gym.search.summarize import tokenize  # noqa: E402
from mmsearch_gym.search.types import QueryImage  # noqa: E402

SYLLABLES = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"]


def vocabulary(size: int, rng: np.random.Generator) -> np.ndarray:
    words = {"".join(rng.choice(SYLLABLES, int(rng.integers(2, 5)))) for _ in range(size * 2)}
    return np.array(sorted(words)[:size])


def pattern_image(seed: int, size: int = 224) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(10):
        x0, x1 = sorted(int(v) for v in rng.integers(0, size, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, size, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if rng.integers(0, 2) else draw.ellipse)([x0, y0, x1 + 8, y1 + 8], fill=colour)
    return image


def write_corpus(root: Path, n_pages: int, words_per_page: int, with_images: bool, seed: int = 0) -> list[str]:
    """Write the corpus; returns the page texts' first 400 words for drawing queries (small sample)."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(30_000, rng)
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    words = rng.choice(len(vocab), size=(n_pages, words_per_page), p=weights / weights.sum())
    (root / "images").mkdir(parents=True)
    samples = []
    with open(root / "pages.jsonl", "w", encoding="utf-8") as handle:
        for page in range(n_pages):
            tokens = vocab[words[page]].tolist()
            sentences = [" ".join(tokens[i:i + 12]).capitalize() + "." for i in range(0, len(tokens), 12)]
            images = []
            if with_images:
                images = [f"images/{page}.jpg"]
                pattern_image(page).save(root / images[0], quality=90)
            text = " ".join(sentences)
            if page < 1000:
                samples.append(text)
            handle.write(json.dumps({"url": f"https://example.org/{page}", "title": " ".join(tokens[:4]),
                                     "text": text, "images": images}) + "\n")
    return samples


def interleaved_ms(metrics: dict[str, Callable[[int], object]], n: int, rounds: int = 5) -> dict[str, str]:
    """Per metric: median latency over `n` calls taken in `rounds` interleaved batches (so that load
    from other processes hits every metric alike) and the best batch median (the least disturbed
    estimate), formatted 'median ms (best batch)'."""
    for fn in metrics.values():
        for i in range(3):
            fn(i)
    per_round = max(1, n // rounds)
    samples: dict[str, list[list[float]]] = {name: [] for name in metrics}
    for round_ in range(rounds):
        for name, fn in metrics.items():
            times = []
            for i in range(round_ * per_round, (round_ + 1) * per_round):
                start = time.perf_counter()
                fn(i)
                times.append(time.perf_counter() - start)
            samples[name].append(times)
    out = {}
    for name, batches in samples.items():
        everything = [t for batch in batches for t in batch]
        best = min(statistics.median(batch) for batch in batches)
        out[name] = f"{statistics.median(everything) * 1e3:.3f} ms ({best * 1e3:.3f})"
    return out


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def run(n_pages: int, args: argparse.Namespace, work: Path) -> None:
    root = work / f"corpus-{n_pages}"
    with_images = n_pages <= args.real_images_max
    start = time.perf_counter()
    samples = write_corpus(root, n_pages, args.words, with_images)
    generated = time.perf_counter() - start

    start = time.perf_counter()
    backend = LocalCorpusBackend(root)
    built = time.perf_counter() - start
    assert backend.index_built
    start = time.perf_counter()
    backend = LocalCorpusBackend(root)
    loaded = time.perf_counter() - start
    assert not backend.index_built
    print(f"\n== {n_pages:,} pages ({'1 real image each' if with_images else 'text only'}), "
          f"generated in {generated:.1f} s")
    print(f"   index build {built:.2f} s, load {loaded * 1e3:.1f} ms, on disk {dir_mb(backend.index_path):.1f} MB")

    rng = np.random.default_rng(1)
    queries = []
    for _ in range(args.queries):
        words = samples[int(rng.integers(len(samples)))].rstrip(".").split()
        queries.append(" ".join(rng.choice(words, 10)))
    bm25 = backend._index.bm25
    stopwords = backend._stopwords
    token_lists = [[t for t in tokenize(q, stopwords) if t in bm25.vocab_dict] for q in queries]
    token_ids = [[bm25.vocab_dict[t] for t in tokens] for tokens in token_lists]
    hits = [backend.text_search(q, 5) for q in queries[:20]]
    assert all(h.error is None and h.items for h in hits), hits[0]

    query = QueryImage(np.asarray(pattern_image(n_pages // 2).resize((180, 180))))
    if with_images:
        index = backend._index.hash_index
        assert backend.image_search(query, 5).items[0].url == f"https://example.org/{n_pages // 2}"
    else:
        hashes = np.random.default_rng(2).integers(0, 2**64, size=(HASH_ROWS, n_pages), dtype=np.uint64)
        index = HashIndex(hashes, np.arange(n_pages), np.arange(n_pages))
    pil_query = Image.fromarray(query.pixels)
    q = query_hash(pil_query)
    single = index.hashes[0]
    n_images = index.n_images
    nq = len(queries)
    rows = backend._hash_rows
    metrics: dict[str, Callable[[int], object]] = {
        "text_search": lambda i: backend.text_search(queries[i % nq], 5),
        "bm25_rank": lambda i: rank_bm25(bm25, token_ids[i % nq], 5, backend._index.url_rank),
        "bm25s_floor": lambda i: bm25.retrieve([token_lists[i % nq]], k=5, show_progress=False),
        "phash_nn": lambda i: index.search(query_hash(pil_query), backend.threshold, 5, rows),
        "phash": lambda i: query_hash(pil_query),
        "nn": lambda i: index.search(q, backend.threshold, 5, rows),
        "phash_nn_all": lambda i: index.search(query_hash(pil_query), backend.threshold, 5, CROP_MODES["all"]),
        "nn_floor": lambda i: np.flatnonzero(popcount64(single ^ np.uint64(q)) <= backend.threshold),
    }
    if with_images:
        metrics["image_search"] = lambda i: backend.image_search(query, 5)
    ms = interleaved_ms(metrics, args.queries)
    print(f"   text  text_search (BM25 + reading hits + summaries) {ms['text_search']}   [target <= 2 ms at 100k]\n"
          f"         our BM25 ranking {ms['bm25_rank']}; floor: bm25s.retrieve {ms['bm25s_floor']}")
    print(f"   image phash + nearest neighbours {ms['phash_nn']}   [target <= 1.5 ms at 100k]\n"
          f"         phash {ms['phash']}, NN over {rows * n_images:,} hashes {ms['nn']}; "
          f"floor: NN over {n_images:,} single hashes {ms['nn_floor']}\n"
          f"         with crops='all' (corner crops too: {HASH_ROWS * n_images:,} hashes) "
          f"phash + NN {ms['phash_nn_all']}")
    if with_images:
        print(f"   image image_search end to end (reading hits, thumbnails) {ms['image_search']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated corpus sizes")
    parser.add_argument("--words", type=int, default=200, help="words per page")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per metric")
    parser.add_argument("--real-images-max", type=int, default=1000,
                        help="largest corpus that gets real images (above: random hashes)")
    parser.add_argument("--workdir", type=Path, default=None, help="where corpora go (default: a temp dir)")
    args = parser.parse_args()
    try:
        sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    if not sizes or min(sizes) < 1:
        parser.error(f"--sizes must be positive, got {args.sizes!r}")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="local-retrieval-"))
    print(f"load average at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; latencies are "
          "'median (best of 5 interleaved batch medians)'")
    try:
        for size in sizes:
            run(size, args, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
