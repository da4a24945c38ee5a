"""The sample schema every dataset loader produces (DESIGN §7)."""

from __future__ import annotations

from collections.abc import Mapping as MappingABC, Sequence as SequenceABC
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np

from mmsearch_gym.imaging import ImageError, ImageLike, load_rgb

Category = Literal["search_free", "search_required"]


def _answer_tuple(sample_id: str, name: str, value: Any, required: bool) -> tuple[str, ...]:
    """`value` as a tuple of non-empty strings (a single string is one answer), or a ValueError naming
    the sample, the field and the bad item. Checked here, at construction, because a sample with no
    gold answer can never score and a non-string answer would only fail at step time, mid-run."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, SequenceABC) or isinstance(value, (bytes, bytearray, MappingABC)):
        raise ValueError(f"sample {sample_id!r}: {name} must be a list or tuple of strings, "
                         f"got {type(value).__name__}")
    items = tuple(value)
    for position, item in enumerate(items):
        if not isinstance(item, str):
            raise ValueError(f"sample {sample_id!r}: {name}[{position}] must be a string, "
                             f"got {type(item).__name__} {item!r}")
        if not item.strip():
            raise ValueError(f"sample {sample_id!r}: {name}[{position}] is empty ({item!r})")
    if required and not items:
        raise ValueError(f"sample {sample_id!r}: {name} is empty; a sample needs at least one gold answer")
    return tuple(str(item) for item in items)


@dataclass(frozen=True)
class VQASample:
    """One visual question with its gold answers.

    `image` may be pixels, a PIL image, encoded bytes or a file path: large suites keep paths or
    bytes and decode on use (`rgb()`), so a 10k-sample training set does not sit decoded in memory.
    `answers` must hold at least one non-empty string (a single string is taken as one answer);
    `candidate_answers` are accepted aliases (FVQA's `candidate_answers`), also non-empty strings;
    scoring uses both.
    `image_origin` says where the image was read from (e.g. "fvqa_test.parquet: row 3, column
    'images[0]'"), only so that a decoding error can point into the source file; it takes no part in
    equality and is not written to suites.
    """

    id: str
    image: ImageLike
    question: str
    answers: tuple[str, ...]
    candidate_answers: tuple[str, ...] = ()
    category: Category | None = None
    source: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    image_origin: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"VQASample.id must be a non-empty string, got {self.id!r}")
        if self.image is None:
            raise ValueError(f"sample {self.id!r} has no image")
        if not isinstance(self.question, str):
            raise ValueError(f"sample {self.id!r}: question must be a string, got {type(self.question).__name__}")
        object.__setattr__(self, "answers", _answer_tuple(self.id, "answers", self.answers, required=True))
        object.__setattr__(self, "candidate_answers",
                           _answer_tuple(self.id, "candidate_answers", self.candidate_answers, required=False))
        if self.category not in (None, "search_free", "search_required"):
            raise ValueError(
                f"sample {self.id!r}: category must be 'search_free', 'search_required' or None, "
                f"got {self.category!r}"
            )
        if not isinstance(self.image_origin, str):
            raise ValueError(f"sample {self.id!r}: image_origin must be a string, got {self.image_origin!r}")

    @property
    def gold(self) -> tuple[str, ...]:
        """Every accepted answer: `answers` then `candidate_answers`."""
        return self.answers + self.candidate_answers

    @property
    def image_url(self) -> str | None:
        url = self.meta.get("image_url") if self.meta else None
        return url if isinstance(url, str) and url else None

    def rgb(self) -> np.ndarray:
        """The image as RGB uint8 pixels (see `mmsearch_gym.imaging`). A damaged, oversized or
        unconvertible image raises ImageError in one line naming this sample and where its image
        came from, so a failure mid-run says which row of which file to fix."""
        try:
            return load_rgb(self.image)
        except ValueError as error:
            where = f" ({self.image_origin})" if self.image_origin else ""
            raise ImageError(f"sample {self.id!r}{where}: {error}") from error
