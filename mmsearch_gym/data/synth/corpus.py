"""The web corpus the local search backend retrieves from.

Format (a contract with `search.local`): a directory holding `pages.jsonl`, one JSON object per
line, `{"url": str, "title": str, "text": str, "images": [paths relative to the directory]}`, and
the images under `images/` as JPEG files.

Each entity gets three pages (encyclopedia, news, travel blog). The encyclopedia and news pages
state every fact sentence verbatim, the blog two of them; each shows a copy of the emblem that
was cropped (at most 8%), resized and JPEG re-encoded, as a page republishing it would. Titles
contain the entity's name, so an image search result already tells the agent the name.
Distractor pages look the same but are about other fictional things, with similar names, the
same vocabulary and unrelated pictures, so retrieval has to discriminate.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mmsearch_gym.data.suite_io import reset_image_dir
from mmsearch_gym.data.synth.emblems import jpeg_copy, phash64
from mmsearch_gym.data.synth.kinds import KINDS
from mmsearch_gym.data.synth.seeding import py_rng
from mmsearch_gym.data.synth.world import (
    MIN_PHASH_DISTANCE,
    Distractor,
    Entity,
    World,
    distractor_image,
)
from mmsearch_gym.runs import write_bytes_atomic

PAGES_FILE = "pages.jsonl"
IMAGES_DIR = "images"
STYLES = ("wiki", "news", "blog")

_FILLERS = (
    "Archivists continue to catalogue records about {the}.",
    "Many people first learn of {the} through its emblem.",
    "Accounts of {the} differ in detail, but the main dates are well documented.",
    "The emblem of {the} appears on banners, letterheads and souvenirs.",
    "Local guides like to tell stories about {the}.",
    "A small museum keeps letters and photographs connected with {the}.",
    "Scholars have written several short studies of {the}.",
)
_NEWS_TITLES = ("{The} marks another milestone", "Historians revisit the story of {the}",
                "New exhibition on {the} opens", "Why {the} is in the news again")
_BLOG_TITLES = ("Notes from a trip: {name}", "What I learned about {name}", "A weekend with {name}",
                "Travel diary: discovering {name}")
_NEWS_OPENERS = ("Interest in {the} has grown this season.", "Readers have asked us about {the}.",
                 "This week our reporters looked back at {the}.")
_BLOG_OPENERS = ("I had wanted to learn about {the} for years.", "On my last trip I kept hearing about {the}.",
                 "Friends recommended that I read up on {the}.")


@dataclass(frozen=True)
class Page:
    url: str
    title: str
    text: str
    images: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"url": self.url, "title": self.title, "text": self.text,
                           "images": list(self.images)}, ensure_ascii=False, sort_keys=True)


def slug(name: str) -> str:
    return "-".join(name.lower().split())


def _fill(template: str, thing: Entity | Distractor) -> str:
    return template.format(the=thing.the_name, The=thing.The_name, name=thing.name)


def _page(style: str, thing: Entity | Distractor, sentences: list[str], rng: random.Random,
          image_path: str) -> Page:
    spec = KINDS[thing.kind]
    name_path = thing.name.replace(" ", "_")
    fillers = [_fill(f, thing) for f in rng.sample(_FILLERS, 2)]
    if style == "wiki":
        title = f"{thing.name} - Synthpedia"
        url = f"https://wiki.synth.test/{name_path}"
        body = [_fill(spec.intro, thing), *sentences, *fillers]
    elif style == "news":
        title = f"{_fill(rng.choice(_NEWS_TITLES), thing)} | The Synth Ledger"
        url = f"https://news.synth.test/{rng.randint(2015, 2025)}/{slug(thing.name)}"
        body = [_fill(rng.choice(_NEWS_OPENERS), thing), *sentences, fillers[0]]
    elif style == "blog":
        title = _fill(rng.choice(_BLOG_TITLES), thing)
        url = f"https://travel.synth.test/posts/{slug(thing.name)}"
        body = [_fill(rng.choice(_BLOG_OPENERS), thing), fillers[0], *sentences, fillers[1]]
    else:
        raise ValueError(f"unknown page style {style!r}; known: {STYLES}")
    return Page(url, title, " ".join(body), (image_path,))


_COPY_STYLE = {"wiki": (160, 90, 0.02), "news": (112, 75, 0.05), "blog": (140, 65, 0.04)}
# A page copy stays within this many phash bits of its emblem. Emblems differ pairwise by at least
# MIN_PHASH_DISTANCE (17) bits, so by the triangle inequality every other emblem's copies are at
# least 11 bits away: an emblem's nearest corpus images are always its own pages' images, and the
# local backend's default match threshold (10 bits) separates them.
MAX_COPY_DISTANCE = MIN_PHASH_DISTANCE - 11
_COPY_ATTEMPTS = 20


def _jpeg(image: Image.Image, rng: random.Random, style: str) -> bytes:
    size, quality, crop = _COPY_STYLE[style]
    return jpeg_copy(image, rng, size=size, quality=quality, max_crop=crop)


def _emblem_copy(world: World, entity: Entity, emblem: Image.Image, style: str) -> bytes:
    """A cropped/resized/JPEG copy of the emblem close enough in phash (see MAX_COPY_DISTANCE):
    crops are retried deterministically, and the last resort is an uncropped copy."""
    size, quality, crop = _COPY_STYLE[style]
    for attempt in range(_COPY_ATTEMPTS + 1):
        rng = py_rng(world.seed, "page-image", entity.index, style, attempt)
        data = jpeg_copy(emblem, rng, size=size, quality=quality,
                         max_crop=crop if attempt < _COPY_ATTEMPTS else 0.0)
        distance = bin(phash64(Image.open(io.BytesIO(data))) ^ entity.phash).count("1")
        if distance <= MAX_COPY_DISTANCE:
            return data
    raise RuntimeError(f"emblem copy of {entity.name!r} ({style}) drifts {distance} phash bits even uncropped")


def entity_pages(world: World, entity: Entity) -> Iterator[tuple[Page, str, bytes]]:
    """The entity's three pages, each with its image path and JPEG bytes."""
    emblem = Image.open(io.BytesIO(entity.emblem_png)).convert("RGB")
    sentences = [fact.sentence for fact in entity.facts]
    for style in STYLES:
        rng = py_rng(world.seed, "page", entity.index, style)
        chosen = list(sentences)
        if style == "news":
            rng.shuffle(chosen)
        elif style == "blog":
            chosen = rng.sample(sentences, 2)
        path = f"{IMAGES_DIR}/{slug(entity.name)}-{style}.jpg"
        yield _page(style, entity, chosen, rng, path), path, _emblem_copy(world, entity, emblem, style)


def distractor_page(world: World, distractor: Distractor) -> tuple[Page, str, bytes]:
    """The distractor's single page, with its unrelated picture."""
    rng = py_rng(world.seed, "distractor-page", distractor.index)
    style = rng.choice(STYLES)
    path = f"{IMAGES_DIR}/x-{slug(distractor.name)}.jpg"
    page = _page(style, distractor, [fact.sentence for fact in distractor.facts], rng, path)
    return page, path, _jpeg(distractor_image(world.seed, distractor), rng, style)


def iter_corpus(world: World) -> Iterator[tuple[Page, str, bytes]]:
    """Every page of the corpus in its (seeded, shuffled) file order, with its image."""
    items: list[tuple[Page, str, bytes]] = []
    for entity in world.entities:
        items.extend(entity_pages(world, entity))
    for distractor in world.distractors:
        items.append(distractor_page(world, distractor))
    order = list(range(len(items)))
    py_rng(world.seed, "corpus-order").shuffle(order)
    for position in order:
        yield items[position]


def write_corpus(world: World, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write `pages.jsonl` and `images/` into `out_dir` and return the directory.

    Refuses (ValueError) to write over an existing corpus unless `overwrite`; then the old
    images are removed first so no stale file survives.
    """
    out = Path(out_dir)
    pages_path = out / PAGES_FILE
    if pages_path.exists() and not overwrite:
        raise ValueError(f"{str(pages_path)!r} already exists; pass overwrite=True to replace the corpus")
    reset_image_dir(out / IMAGES_DIR, "*.jpg")
    lines = []
    for page, path, data in iter_corpus(world):
        (out / path).write_bytes(data)
        lines.append(page.to_json())
    write_bytes_atomic(pages_path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o644)
    return out
