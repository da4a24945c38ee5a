"""The synthetic world generator: determinism, names, emblems, corpus and questions."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.synth import build_suite, generate_questions, generate_world, phash64, write_corpus
from mmsearch_gym.data.synth.corpus import MAX_COPY_DISTANCE, slug
from mmsearch_gym.data.synth.emblems import SIZE, render
from mmsearch_gym.data.synth.kinds import NUMBER_WORDS
from mmsearch_gym.data.synth.names import _COMMON_WORDS
from mmsearch_gym.data.synth.palette import COLOURS

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


@pytest.fixture(scope="module")
def world():
    return generate_world(0, 300, n_test_entities=75)


@pytest.fixture(scope="module")
def questions(world):
    return generate_questions(world, 1500, 3, "train") + generate_questions(world, 400, 4, "test")


def tree_digest(root: Path) -> str:
    hasher = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hasher.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()


_SCRIPT = """
import hashlib, sys
from pathlib import Path
from mmsearch_gym.data.synth import build_suite
root = Path(sys.argv[1])
build = build_suite(root, seed=11, n_test=40, n_train=80, n_entities_test=12, n_entities_train=24)
hasher = hashlib.sha256()
for path in sorted(p for p in root.rglob("*") if p.is_file()):
    hasher.update(str(path.relative_to(root)).encode() + b"\\0" + path.read_bytes())
print(build.test_hash, build.train_hash, hasher.hexdigest())
"""


def test_build_is_byte_identical_across_processes(tmp_path):
    outputs = []
    for run, hash_seed in enumerate(("1", "2")):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / f"run{run}")], env=env,
                              capture_output=True, text=True, timeout=120, check=True)
        outputs.append(done.stdout.split())
    assert outputs[0] == outputs[1]
    local = build_suite(tmp_path / "here", seed=11, n_test=40, n_train=80, n_entities_test=12,
                        n_entities_train=24)
    assert [local.test_hash, local.train_hash, tree_digest(tmp_path / "here")] == outputs[0]


def test_different_seeds_give_different_worlds():
    a, b = generate_world(1, 20), generate_world(2, 20)
    assert [e.name for e in a.entities] != [e.name for e in b.entities]


def test_names_unique_and_not_common_words(world):
    base_words = [e.name.split(" ")[0].lower() for e in world.entities + world.distractors]
    assert len(set(base_words)) == len(base_words)
    assert not set(base_words) & set(_COMMON_WORDS)
    people = [f.value for e in world.entities for f in e.facts if f.key in ("founder", "discoverer", "captain")]
    assert len(set(people)) == len(people)
    kinds = Counter(e.kind for e in world.entities)
    assert set(kinds) == {"organisation", "place", "species", "vessel", "festival"}


def test_splits_have_disjoint_entities(world):
    test, train = world.split("test"), world.split("train")
    assert len(test) == 75 and len(train) == 225
    assert not {e.name for e in test} & {e.name for e in train}
    with pytest.raises(ValueError, match="split"):
        world.split("dev")


def test_phash64_is_imagehash_phash(world):
    imagehash = pytest.importorskip("imagehash")
    for entity in world.entities[:100]:
        assert int(str(imagehash.phash(Image.open(io.BytesIO(entity.emblem_png)))), 16) == entity.phash


def test_emblems_pairwise_phash_distance_above_16(world):
    hashes = [phash64(Image.open(io.BytesIO(e.emblem_png))) for e in world.entities]
    assert hashes == [e.phash for e in world.entities]
    bits = np.array([[(h >> (63 - i)) & 1 for i in range(64)] for h in hashes], dtype=bool)
    distances = (bits[:, None, :] != bits[None, :, :]).sum(axis=2)
    np.fill_diagonal(distances, 64)
    assert distances.min() > 16


def _components(mask: np.ndarray) -> list[int]:
    """Sizes of 8-connected components of a boolean mask (a triangle's tip may touch diagonally),
    by propagating the largest label to neighbours until nothing changes."""
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    while True:
        padded = np.pad(labels, 1)
        h, w = mask.shape
        spread = np.max([padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1)], axis=0)
        spread = np.where(mask, spread, 0)
        if np.array_equal(spread, labels):
            break
        labels = spread
    _, sizes = np.unique(labels[mask], return_counts=True)
    return sizes.tolist()


def test_pixel_answers_match_pixels(world):
    for entity in world.entities[:40]:
        design = entity.emblem
        pixels = np.asarray(Image.open(io.BytesIO(entity.emblem_png)).convert("RGB"))
        assert pixels.shape == (SIZE, SIZE, 3)
        assert np.array_equal(pixels, np.asarray(render(design)))
        packed = (pixels[..., 0].astype(np.int64) << 16) | (pixels[..., 1].astype(np.int64) << 8) | pixels[..., 2]
        values, counts = np.unique(packed, return_counts=True)
        palette = {(r << 16) | (g << 8) | b for r, g, b in (c.rgb for c in COLOURS.values())}
        assert set(values.tolist()) <= palette  # no anti-aliasing: every pixel is a named colour
        r, g, b = COLOURS[design.background].rgb
        assert values[counts.argmax()] == (r << 16) | (g << 8) | b and counts.max() / packed.size > 0.5
        marks = np.all(pixels == COLOURS[design.mark_colour].rgb, axis=2)
        assert len(_components(marks)) == design.mark_count
        figure = np.all(pixels == COLOURS[design.figure_colour].rgb, axis=2)  # one shape, one colour
        assert figure.sum() > max(_components(marks))


def test_questions_never_leak_name_or_answer(questions):
    for sample in questions:
        assert isinstance(sample, VQASample)
        question = words(sample.question)
        for answer in sample.gold:
            answer_words = words(answer)
            assert not answer_words <= question or not answer_words, (sample.question, answer)
        if sample.category == "search_required":  # the proper name (not "Festival") never appears
            assert sample.meta["entity"].split(" ")[0].lower() not in question, sample.question


def test_question_meta_and_plan(world, questions):
    test_names = {e.name for e in world.split("test")}
    for sample in questions:
        meta = sample.meta
        assert meta["needs"] in ("none", "image", "image+text") and meta["suite"] == "synth"
        assert (sample.category == "search_free") == (meta["needs"] == "none")
        assert (meta["entity"] in test_names) == (meta["split"] == "test") == sample.id.startswith("synth-test-")
        entity = world.entity(meta["entity"])
        assert sample.image == entity.emblem_png
        if meta["needs"] == "none":
            assert meta["plan"] == ["answer"]
        elif meta["needs"] == "image":
            assert meta["plan"] == ["image_search", "answer"] and sample.answers == (entity.name,)
        else:
            search, query = meta["plan"][1].split(":", 1)
            assert meta["plan"][0] == "image_search" and search == "text_search" and meta["plan"][2] == "answer"
            fact = entity.fact(meta["fact"])
            assert query.startswith(entity.name) and sample.answers == (fact.value,)
            assert words(query) <= words(fact.sentence)  # the query's words are all in the sentence
        if meta["fact"] == "background_colour":
            assert sample.answers == (entity.emblem.background,)
        if meta["fact"] == "mark_count":
            count = entity.emblem.mark_count
            assert sample.answers == (str(count),) and NUMBER_WORDS[count] in sample.candidate_answers


def test_question_mix_ids_and_determinism(world):
    train = generate_questions(world, 1000, 3, "train")
    test = generate_questions(world, 300, 3, "test")
    assert not {s.id for s in train} & {s.id for s in test}
    assert len({s.id for s in train}) == 1000
    needs = Counter(s.meta["needs"] for s in train)
    assert needs == {"none": 200, "image": 300, "image+text": 500}
    again = generate_questions(world, 1000, 3, "train")
    def key(s):
        return s.id, s.question, s.answers, s.meta

    assert [key(s) for s in again] == [key(s) for s in train]
    only_image = generate_questions(world, 50, 3, "test", mix={"image": 1})
    assert {s.meta["needs"] for s in only_image} == {"image"}
    # the image pool (one per test entity) is used up before anything repeats
    assert len({s.meta["entity"] for s in only_image}) == 50


def test_question_argument_errors(world):
    with pytest.raises(ValueError, match="split"):
        generate_questions(world, 5, 0, "validation")
    with pytest.raises(ValueError, match="unknown keys"):
        generate_questions(world, 5, 0, "test", mix={"visual": 1.0})
    with pytest.raises(ValueError, match="n must be"):
        generate_questions(world, -1, 0, "test")
    with pytest.raises(ValueError, match="no 'test' entities"):
        generate_questions(generate_world(0, 4, n_test_entities=0), 5, 0, "test")


def test_ten_thousand_questions_on_demand(world):
    samples = generate_questions(world, 10_000, 9, "train")
    assert len(samples) == 10_000 and len({s.id for s in samples}) == 10_000


def test_corpus_format(tmp_path):
    small = generate_world(5, 40, n_test_entities=10, n_distractors=20)
    root = write_corpus(small, tmp_path / "corpus")
    lines = (root / "pages.jsonl").read_text(encoding="utf-8").splitlines()
    pages = [json.loads(line) for line in lines]
    assert len(pages) == 3 * 40 + 20
    assert len({p["url"] for p in pages}) == len(pages)
    for page in pages:
        assert set(page) == {"url", "title", "text", "images"}
        assert all(isinstance(page[k], str) and page[k] for k in ("url", "title", "text"))
        for image in page["images"]:
            assert not Path(image).is_absolute() and image.startswith("images/")
            with Image.open(root / image) as opened:
                assert opened.format == "JPEG"
    for entity in small.entities:
        own = [p for p in pages if p["images"][0].startswith(f"images/{slug(entity.name)}-")]
        assert len(own) == 3 and all(entity.name in p["title"] for p in own)
        for fact in entity.facts:
            assert entity.name in fact.sentence
            assert sum(fact.sentence in p["text"] for p in own) >= 2, fact.sentence
        for page in own:  # page images are near copies: the emblem's nearest neighbours by phash
            with Image.open(root / page["images"][0]) as copy:
                assert bin(phash64(copy) ^ entity.phash).count("1") <= MAX_COPY_DISTANCE
    with pytest.raises(ValueError, match="overwrite"):
        write_corpus(small, root)
    write_corpus(small, root, overwrite=True)
    assert (root / "pages.jsonl").read_text(encoding="utf-8").splitlines() == lines


def test_world_argument_errors():
    with pytest.raises(ValueError, match="n_entities"):
        generate_world(0, 0)
    with pytest.raises(ValueError, match="n_test_entities"):
        generate_world(0, 5, n_test_entities=6)
    with pytest.raises(ValueError, match="seed"):
        generate_world("0", 5)  # type: ignore[arg-type]
