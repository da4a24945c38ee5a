"""Building training environments from an `EnvConfig`.

Why a factory rather than one env: a rollout plays many episodes at once, one env each, and a
multi-process run builds its own envs in every process. `make_env_factory(config)` resolves the
dataset and the search backend once and returns a cheap `() -> gym.Env`.

`synth_world_search` answers the synthetic world's searches from memory (a `StaticSearchBackend`
holding, for each entity, its emblem's image-search results — its corpus pages' titles and picture
copies — and, for each fact, the text-search result stating it), so a training run on synthetic data
needs no corpus on disk, no index and no recorded cache.
"""

from __future__ import annotations

import io
from typing import Any, Callable, Sequence

import gymnasium as gym
from PIL import Image

import mmsearch_gym  # noqa: F401 - registers the env id
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.registration import ENV_ID
from mmsearch_gym.search.static import StaticSearchBackend
from mmsearch_gym.search.types import EncodedImage, SearchItem, SearchResults
from mmsearch_gym.trainers.config import EnvConfig, SynthConfig

EnvFactory = Callable[[], gym.Env]


def synth_world_search(config: SynthConfig) -> tuple[tuple[VQASample, ...], StaticSearchBackend]:
    """Synthetic questions and an in-memory search backend over the same world."""
    from mmsearch_gym.data.synth import generate_questions, generate_world
    from mmsearch_gym.data.synth.corpus import entity_pages
    from mmsearch_gym.data.synth.seeding import derive_seed

    n_test = config.n_entities if config.split == "test" else 0
    world = generate_world(config.seed, config.n_entities, n_test_entities=n_test)
    samples = generate_questions(world, config.n_questions, derive_seed(config.seed, "train-questions"),
                                 config.split, mix=config.mix, suite=f"synth-{config.seed}")
    images: list[tuple[Any, SearchResults]] = []
    texts: dict[str, SearchResults] = {}
    for entity in world.split(config.split):
        pages = list(entity_pages(world, entity))
        items = tuple(SearchItem(page.title, page.url, thumbnail=EncodedImage.from_pil(
            Image.open(io.BytesIO(jpeg)).convert("RGB"))) for page, _, jpeg in pages)
        images.append((entity.emblem_png, SearchResults("image", items)))
        wiki = pages[0][0]
        for fact in entity.facts:
            texts[fact.query] = SearchResults("text", (SearchItem(wiki.title, wiki.url, fact.sentence),))
    return samples, StaticSearchBackend(images=images, texts=texts)


def env_kwargs(config: EnvConfig) -> dict[str, Any]:
    """gym.make keyword arguments for everything but dataset/search/cache_path."""
    return {
        "max_turns": config.max_turns,
        "image_search_limit": config.image_search_limit,
        "text_search_limit": config.text_search_limit,
        "top_k": config.top_k,
        "prompt_style": config.prompt_style,
        "reward": config.reward,
    }


def make_env_factory(config: EnvConfig) -> tuple[EnvFactory, tuple[VQASample, ...]]:
    """(env factory, the dataset's samples). Builds one env up front so configuration errors (unknown
    suite, missing cache) surface before any model is loaded."""
    kwargs = env_kwargs(config)
    if config.synth is not None:
        samples, static = synth_world_search(config.synth)
        search: Any = static if config.search in (None, "static") else config.search
        source: dict[str, Any] = {"dataset": samples, "search": search}
        if config.cache_path is not None:
            source["cache_path"] = config.cache_path
    else:
        source = {key: value for key, value in (("dataset", config.dataset), ("search", config.search),
                                                ("cache_path", config.cache_path)) if value is not None}

    def factory() -> gym.Env:
        return gym.make(ENV_ID, **source, **kwargs)

    probe = factory()
    samples = tuple(probe.unwrapped.dataset)
    probe.close()
    return factory, samples


def sample_ids(samples: Sequence[VQASample]) -> list[str]:
    return [sample.id for sample in samples]
