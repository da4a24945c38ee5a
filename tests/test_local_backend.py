"""LocalCorpusBackend: perceptual-hash image search, BM25 text search, persisted index, errors.

The corpus is generated here: 60 pages with random geometric-pattern images drawn with PIL and
texts from a small vocabulary, each page holding one "key" sentence with words no other page has.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytest.importorskip("bm25s")
pytest.importorskip("imagehash")

from mmsearch_gym.search import LocalCorpusBackend, QueryImage, SearchBackend  # noqa: E402
from mmsearch_gym.search.summarize import extractive_summary, split_sentences, tokenize  # noqa: E402

N_PAGES = 60
COMMON = ("river stone market city garden winter tower bridge harbor festival museum painting "
          "engine railway council treaty island mountain forest library village castle empire "
          "bronze silver golden ancient modern northern southern eastern western coastal").split()
SYLLABLES = ("ka", "lo", "mi", "ru", "ze", "po", "ta", "ne", "vi", "sa", "do", "fe", "gu", "xo")


def pattern_image(seed: int, size: tuple[int, int] = (240, 180)) -> Image.Image:
    """A random arrangement of coloured rectangles, ellipses, triangles and lines."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(6, 14))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        x1, y1 = max(x1, x0 + 8), max(y1, y0 + 8)
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.rectangle([x0, y0, x1, y1], fill=colour)
        elif kind == 1:
            draw.ellipse([x0, y0, x1, y1], fill=colour)
        elif kind == 2:
            draw.polygon([(int(rng.integers(0, width)), int(rng.integers(0, height))) for _ in range(3)], fill=colour)
        else:
            draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(2, 10)))
    return image


def noise_image(seed: int, size: tuple[int, int] = (240, 180)) -> Image.Image:
    """1/f ("natural-looking") colour noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    freq = np.sqrt(np.fft.fftfreq(height)[:, None] ** 2 + np.fft.fftfreq(width)[None, :] ** 2)
    freq[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=(height, width)) + 1j * rng.normal(size=(height, width))) / freq ** 1.2
        channel = np.real(np.fft.ifft2(spectrum))
        channels.append((channel - channel.min()) / (channel.max() - channel.min()) * 255)
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8))


def unique_word(page: int, salt: int) -> str:
    rng = np.random.default_rng(10_000 + 7 * page + salt)
    return "".join(SYLLABLES[int(i)] for i in rng.integers(0, len(SYLLABLES), 4)) + f"{page}x{salt}"


def key_sentence(page: int) -> str:
    return f"The {unique_word(page, 1)} of {unique_word(page, 2)} was founded in {1700 + page}."


def page_text(page: int) -> str:
    rng = np.random.default_rng(page)
    sentences = [" ".join(str(w) for w in rng.choice(COMMON, int(rng.integers(6, 12)))).capitalize() + "."
                 for _ in range(8)]
    sentences.insert(int(rng.integers(0, 9)), key_sentence(page))
    return " ".join(sentences)


def page_images(page: int) -> list[int]:
    """Image seeds of a page: pages 50-54 have two images, 55-59 none."""
    if page >= 55:
        return []
    return [page, 1000 + page] if page >= 50 else [page]


def page_url(page: int) -> str:
    return f"https://example.org/wiki/page-{page:03d}"


def write_corpus(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    lines = []
    for page in range(N_PAGES):
        images = []
        for seed in page_images(page):
            relative = f"images/p{seed}.{'jpg' if seed % 3 == 0 else 'png'}"
            pattern_image(seed).save(root / relative, quality=95)
            images.append(relative)
        lines.append({"url": page_url(page), "title": f"Page {page} - Encyclopedia", "text": page_text(page),
                      "images": images})
    # two pages with the same picture, listed against url order: ties must go to the smaller url
    shutil.copy(root / "images/p7.png", root / "images/twin.png")
    lines.append({"url": "https://example.org/twin-b", "title": "Twin B", "text": "", "images": ["images/twin.png"]})
    lines.append({"url": "https://example.org/twin-a", "title": "Twin A", "text": "", "images": ["images/twin.png"]})
    with open(root / "pages.jsonl", "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def backend(corpus: Path) -> LocalCorpusBackend:
    return LocalCorpusBackend(corpus)


def query(image: Image.Image) -> QueryImage:
    return QueryImage(np.asarray(image.convert("RGB"), dtype=np.uint8))


def centre_crop(image: Image.Image, keep: float) -> Image.Image:
    width, height = image.size
    new_w, new_h = round(width * keep), round(height * keep)
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return image.crop((left, top, left + new_w, top + new_h))


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


TRANSFORMS = {
    "identity": lambda im: im,
    "resize-0.5x": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR),
    "resize-1.5x": lambda im: im.resize((im.width * 3 // 2, im.height * 3 // 2), Image.Resampling.BICUBIC),
    "crop-5%": lambda im: centre_crop(im, 0.95),
    "crop-10%": lambda im: centre_crop(im, 0.90),
    "jpeg-q30": lambda im: jpeg(im, 30),
    "crop-20%": lambda im: centre_crop(im, 0.80),
    "crop-10%+0.5x+jpeg": lambda im: jpeg(centre_crop(im, 0.9).resize((im.width // 2, im.height // 2)), 50),
}
IMAGE_PAGES = [0, 3, 9, 12, 21, 30, 33, 41, 48, 52]  # 52 has two images: its second is tested too


# ------------------------------------------------------------------------------- image search

def test_protocol_and_sizes(backend: LocalCorpusBackend) -> None:
    assert isinstance(backend, SearchBackend)
    assert backend.num_pages == N_PAGES + 2
    assert backend.num_images == 50 + 2 * 5 + 2
    assert backend.backend_id.startswith("local:") and "-t10" in backend.backend_id


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_image_search_finds_transformed_copies(backend: LocalCorpusBackend, transform: str) -> None:
    for page in IMAGE_PAGES:
        for seed in page_images(page):
            results = backend.image_search(query(TRANSFORMS[transform](pattern_image(seed))), top_k=3)
            assert results.error is None
            assert results.items, f"{transform} copy of page {page} image {seed} found nothing"
            assert results.items[0].url == page_url(page), (transform, page, seed)


def test_image_items_carry_title_snippet_and_thumbnail(backend: LocalCorpusBackend) -> None:
    item = backend.image_search(query(pattern_image(12)), top_k=5).items[0]
    assert item.title == "Page 12 - Encyclopedia"
    assert item.snippet and page_text(12).startswith(item.snippet.rstrip("…")[:150])
    assert len(item.snippet) <= 200
    assert item.thumbnail is not None and item.thumbnail.mime_type == "image/jpeg"
    assert max(item.thumbnail.to_pil().size) == 128


def test_page_with_two_images_is_one_item(backend: LocalCorpusBackend) -> None:
    results = backend.image_search(query(pattern_image(1052)), top_k=10)
    assert [item.url for item in results.items].count(page_url(52)) == 1


@pytest.mark.parametrize("image", [pattern_image(seed) for seed in range(5000, 5012)]
                         + [noise_image(seed) for seed in range(6)], ids=lambda _: "img")
def test_unrelated_images_return_nothing(backend: LocalCorpusBackend, image: Image.Image) -> None:
    results = backend.image_search(query(image), top_k=5)
    assert results.error is None and results.items == ()


def test_identical_images_tie_break_by_url(backend: LocalCorpusBackend) -> None:
    urls = [item.url for item in backend.image_search(query(pattern_image(7)), top_k=5).items]
    assert urls[:3] == sorted([page_url(7), "https://example.org/twin-a", "https://example.org/twin-b"])
    top2 = [item.url for item in backend.image_search(query(pattern_image(7)), top_k=2).items]
    assert top2 == ["https://example.org/twin-a", "https://example.org/twin-b"]  # file order is b, a


def test_image_search_edge_cases_never_raise(backend: LocalCorpusBackend) -> None:
    for bad in (0, -2, True):  # one top_k rule for every backend: an int >= 1, else an error result
        failed = backend.image_search(query(pattern_image(3)), top_k=bad)
        assert failed.items == () and f"top_k must be an int >= 1, got {bad!r}" in (failed.error or "")
    assert backend.image_search(query(pattern_image(3)), top_k=np.int64(1)).items[0].url == page_url(3)
    assert backend.image_search(QueryImage(np.zeros((0, 0, 3), np.uint8)), top_k=5).items == ()
    assert backend.image_search(QueryImage(np.zeros((1, 1, 3), np.uint8)), top_k=5).error is None
    assert backend.image_search(np.asarray(pattern_image(3)), top_k=1).items[0].url == page_url(3)
    failed = backend.image_search("no/such/file.png", top_k=5)  # type: ignore[arg-type]
    assert failed.items == () and "no/such/file.png" in (failed.error or "")


# -------------------------------------------------------------------------------- text search

@pytest.mark.parametrize("page", [0, 5, 17, 29, 44, 56, 59])
def test_text_search_ranks_the_right_page_first(backend: LocalCorpusBackend, page: int) -> None:
    for text in (f"{unique_word(page, 1)} {unique_word(page, 2)}",
                 f"who founded the {unique_word(page, 2)} river market?"):
        results = backend.text_search(text, top_k=5)
        assert results.error is None and results.items[0].url == page_url(page), text
        item = results.items[0]
        assert item.title == f"Page {page} - Encyclopedia" and item.thumbnail is None
        assert key_sentence(page) in item.snippet
        assert len(item.snippet) <= 400 and len(split_sentences(item.snippet)) <= 3


def test_text_search_common_words_and_top_k(backend: LocalCorpusBackend) -> None:
    results = backend.text_search("ancient castle bridge", top_k=4)
    assert len(results.items) == 4
    assert len({item.url for item in results.items}) == 4
    assert all(item.snippet for item in results.items)
    assert len(backend.text_search("ancient castle bridge", top_k=100).items) <= N_PAGES + 2


@pytest.mark.parametrize("text", ["", "   ", "the of and", "qqqzzz unknownword", "!!!"])
def test_text_search_without_usable_terms_is_empty(backend: LocalCorpusBackend, text: str) -> None:
    results = backend.text_search(text, top_k=5)
    assert results.error is None and results.items == ()


def test_text_search_bad_arguments_never_raise(backend: LocalCorpusBackend) -> None:
    zero = backend.text_search("castle", top_k=0)
    assert zero.items == () and "top_k must be an int >= 1, got 0" in (zero.error or "")
    assert backend.text_search(None, top_k=5).error is not None  # type: ignore[arg-type]
    assert backend.text_search("castle", top_k="5").error is not None  # type: ignore[arg-type]


def test_tokenizer_and_summary_units() -> None:
    assert tokenize("Ｈello, WORLD_wide 42-nd!") == ["hello", "world", "wide", "42", "nd"]
    assert tokenize("the cat and the hat", stopwords={"the", "and"}) == ["cat", "hat"]
    text = "Alpha beta. Gamma delta epsilon! Zeta eta? Theta gamma delta."
    assert split_sentences(text) == ["Alpha beta.", "Gamma delta epsilon!", "Zeta eta?", "Theta gamma delta."]
    summary = extractive_summary(text, ["gamma", "delta", "zeta"], {"gamma": 1.0, "delta": 1.0, "zeta": 3.0},
                                 max_sentences=2)
    assert summary == "Gamma delta epsilon! Zeta eta?"  # best two, in page order, earlier one wins the tie
    assert extractive_summary(text, ["nothing"]) == text  # no match: the page's opening
    assert len(extractive_summary("word " * 300 + ".", ["word"], max_chars=50)) <= 50


# ------------------------------------------------------------------ determinism and the index

def _all_results(backend: LocalCorpusBackend) -> list:
    out = []
    for page in (0, 7, 12, 52):
        out.append(backend.image_search(query(jpeg(pattern_image(page), 40)), top_k=5))
    for text in ("ancient castle bridge", "founded golden river", unique_word(3, 1)):
        out.append(backend.text_search(text, top_k=5))
    return out


def test_index_is_persisted_reused_and_deterministic(corpus: Path, backend: LocalCorpusBackend) -> None:
    assert backend.index_path.parent == corpus / ".index"
    assert (backend.index_path / "manifest.json").is_file()
    again = LocalCorpusBackend(corpus)
    assert not again.index_built
    assert again.backend_id == backend.backend_id
    assert _all_results(again) == _all_results(backend)
    rebuilt = LocalCorpusBackend(corpus, rebuild=True)
    assert rebuilt.index_built and rebuilt.backend_id == backend.backend_id
    assert _all_results(rebuilt) == _all_results(backend)


def test_parameters_change_backend_id_not_corpus(corpus: Path, backend: LocalCorpusBackend) -> None:
    strict = LocalCorpusBackend(corpus, threshold=4)
    assert not strict.index_built  # the threshold is applied at query time
    assert strict.backend_id != backend.backend_id
    assert strict.backend_id.split(":")[1] == backend.backend_id.split(":")[1]
    no_stop = LocalCorpusBackend(corpus, stopwords=False)
    assert no_stop.index_path != backend.index_path and no_stop.backend_id != backend.backend_id


def test_crop_modes_trade_recall_for_speed(corpus: Path, backend: LocalCorpusBackend) -> None:
    every = LocalCorpusBackend(corpus, crops="all")
    plain = LocalCorpusBackend(corpus, crops="none")
    assert not every.index_built and not plain.index_built  # same stored hashes, more or fewer compared
    assert len({backend.backend_id, every.backend_id, plain.backend_id}) == 3
    corners = {page: [pattern_image(page).crop(box) for box in ((0, 0, 216, 162), (24, 18, 240, 180))]
               for page in IMAGE_PAGES}
    for page in IMAGE_PAGES:
        for image in corners[page]:
            assert every.image_search(query(image), top_k=1).items[0].url == page_url(page)
        assert every.image_search(query(centre_crop(pattern_image(page), 0.8)), top_k=1).items[0].url == page_url(page)
        assert plain.image_search(query(jpeg(pattern_image(page), 30)), top_k=1).items[0].url == page_url(page)
    found = sum(bool(backend.image_search(query(image), top_k=1).items)
                for images in corners.values() for image in images)
    assert found < 2 * len(IMAGE_PAGES)  # the default (centred crops only) misses corner crops
    with pytest.raises(ValueError, match="crops must be one of"):
        LocalCorpusBackend(corpus, crops="corners")


def test_index_rebuilt_when_pages_change(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "c")
    first = LocalCorpusBackend(root)
    assert first.index_built
    pages = root / "pages.jsonl"
    os.utime(pages, ns=(1_000_000_000, 1_000_000_000))  # same bytes, new mtime: no rebuild
    touched = LocalCorpusBackend(root)
    assert not touched.index_built and touched.backend_id == first.backend_id
    assert not LocalCorpusBackend(root).index_built
    pattern_image(777).save(root / "images/new.png")
    with open(pages, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"url": "https://example.org/new", "title": "New page",
                                 "text": "A freshly added page about zyxwvut.", "images": ["images/new.png"]}) + "\n")
    changed = LocalCorpusBackend(root)
    assert changed.index_built and changed.backend_id != first.backend_id
    assert changed.text_search("zyxwvut", top_k=3).items[0].url == "https://example.org/new"
    assert changed.image_search(query(pattern_image(777)), top_k=3).items[0].url == "https://example.org/new"
    stale = first.text_search("castle", top_k=3)  # the old backend refuses to read the new file
    assert stale.items == () and "changed since the index was built" in (stale.error or "")
    assert not LocalCorpusBackend(root).index_built


def test_corrupt_index_is_rebuilt(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "c")
    first = LocalCorpusBackend(root)
    (first.index_path / "hashes.npy").write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        again = LocalCorpusBackend(root)
    assert again.index_built and again.backend_id == first.backend_id


def test_unwritable_index_dir_falls_back_to_memory(corpus: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.warns(RuntimeWarning, match="in memory only"):
        backend = LocalCorpusBackend(corpus, index_dir=blocker)
    assert backend.text_search(unique_word(4, 1), top_k=1).items[0].url == page_url(4)


def test_core_package_imports_without_loading_optional_deps() -> None:
    code = ("import sys, mmsearch_gym.search; "
            "assert 'bm25s' not in sys.modules and 'imagehash' not in sys.modules; "
            "assert mmsearch_gym.search.LocalCorpusBackend.__name__ == 'LocalCorpusBackend'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------- errors

def _corpus_with(tmp_path: Path, lines: list[str], images: dict[str, Image.Image] | None = None) -> Path:
    root = tmp_path / "bad"
    (root / "images").mkdir(parents=True)
    for name, image in (images or {}).items():
        image.save(root / name)
    (root / "pages.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return root


GOOD = json.dumps({"url": "https://a", "title": "A", "text": "alpha", "images": []})


def test_missing_corpus_dir_and_pages_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="corpus directory not found: .*nowhere"):
        LocalCorpusBackend(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no pages.jsonl"):
        LocalCorpusBackend(tmp_path / "empty")


@pytest.mark.parametrize(("bad_line", "message"), [
    ('{"url": "https://b", "title": "B", "text": "x", "images": [', r"line 3: malformed JSON"),
    ('["a list"]', r"line 3: expected a JSON object"),
    ('{"title": "B", "text": "x", "images": []}', r"line 3: page has no 'url' field"),
    ('{"url": "https://b", "title": 5, "text": "x", "images": []}', r"line 3: 'title' must be a string"),
    ('{"url": "https://a", "title": "B", "text": "x", "images": []}', r"line 3: duplicate url 'https://a' .*line 1"),
    ('{"url": "https://b", "title": "B", "text": "x", "images": ["../etc/passwd"]}', r"line 3: image path"),
    ('{"url": "https://b", "title": "B", "text": "x", "images": ["images/missing.png"]}',
     r"line 3: image file not found: .*images/missing\.png"),
    ('{"url": "https://b", "title": "B", "text": "x", "images": ["images/broken.png"]}',
     r"line 3: cannot read image .*broken\.png"),
])
def test_corpus_errors_name_file_line_and_value(tmp_path: Path, bad_line: str, message: str) -> None:
    root = _corpus_with(tmp_path, [GOOD, "", bad_line])
    (root / "images/broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=message) as raised:
        LocalCorpusBackend(root)
    assert "pages.jsonl" in str(raised.value)


def test_empty_corpus_and_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no pages"):
        LocalCorpusBackend(_corpus_with(tmp_path, ["", "  "]))
    for kwargs in ({"threshold": 65}, {"threshold": -1}, {"threshold": 2.5}, {"k1": -1.0}, {"b": 2.0},
                   {"crops": "some"}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            LocalCorpusBackend(tmp_path / "bad", **kwargs)


def test_corpus_without_any_text_still_serves_images(tmp_path: Path) -> None:
    line = json.dumps({"url": "https://only-image", "title": "", "text": "", "images": ["images/a.png"]})
    root = _corpus_with(tmp_path, [line], {"images/a.png": pattern_image(42)})
    backend = LocalCorpusBackend(root)
    assert backend.text_search("anything", top_k=3).items == ()
    assert backend.image_search(query(pattern_image(42)), top_k=3).items[0].url == "https://only-image"
    assert not LocalCorpusBackend(root).index_built


def test_ascii_fast_path_tokenizes_like_the_regex() -> None:
    import re
    rng = np.random.default_rng(0)
    alphabet = np.array(list("abcXYZ019 _-.,'\t\n!?/é"))
    pattern = re.compile(r"[^\W_]+")
    for _ in range(300):
        text = "".join(rng.choice(alphabet[:-1], int(rng.integers(0, 40))))
        assert text.isascii() and tokenize(text) == pattern.findall(text.lower()), text
    assert tokenize("Café_crème ÉTÉ") == ["café", "crème", "été"]
