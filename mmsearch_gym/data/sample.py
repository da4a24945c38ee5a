"""The sample schema every dataset loader produces (DESIGN §7)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from mmsearch_gym.imaging import ImageLike, load_rgb

Category = Literal["search_free", "search_required"]


@dataclass(frozen=True)
class VQASample:
    """One visual question with its gold answers.

    `image` may be pixels, a PIL image, encoded bytes or a file path: large suites keep paths or
    bytes and decode on use (`rgb()`), so a 10k-sample training set does not sit decoded in memory.
    `candidate_answers` are accepted aliases (FVQA's `candidate_answers`); scoring uses both.
    """

    id: str
    image: ImageLike
    question: str
    answers: tuple[str, ...]
    candidate_answers: tuple[str, ...] = ()
    category: Category | None = None
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"VQASample.id must be a non-empty string, got {self.id!r}")
        if self.image is None:
            raise ValueError(f"sample {self.id!r} has no image")
        if isinstance(self.answers, str):
            object.__setattr__(self, "answers", (self.answers,))
        else:
            object.__setattr__(self, "answers", tuple(self.answers))
        object.__setattr__(self, "candidate_answers", tuple(self.candidate_answers))
        if self.category not in (None, "search_free", "search_required"):
            raise ValueError(
                f"sample {self.id!r}: category must be 'search_free', 'search_required' or None, "
                f"got {self.category!r}"
            )

    @property
    def gold(self) -> tuple[str, ...]:
        """Every accepted answer: `answers` then `candidate_answers`."""
        return self.answers + self.candidate_answers

    @property
    def image_url(self) -> str | None:
        url = self.meta.get("image_url") if self.meta else None
        return url if isinstance(url, str) and url else None

    def rgb(self) -> np.ndarray:
        try:
            return load_rgb(self.image)
        except ValueError as error:
            raise ValueError(f"sample {self.id!r}: {error}") from error
