"""Gymnasium spaces for variable-size RGB images, unicode text and chat messages.

Why custom spaces: `spaces.Box` needs one fixed shape, but questions and search thumbnails come in
any size; `spaces.Text` only admits a fixed alphabet (alphanumerics by default), but a model writes
arbitrary unicode (tags, punctuation, other scripts). Each space below subclasses `gymnasium.Space`,
seeds from `np_random` and samples deterministically, so `check_env` can exercise the env with them.
"""

from __future__ import annotations

from typing import Any, Iterable, TypeVar

import numpy as np
from gymnasium import spaces

_T = TypeVar("_T")

# Fragments of the action grammar mixed into sampled text, so random actions hit the parser's
# interesting paths (searches, answers, malformed tags) and not only gibberish.
_GRAMMAR_FRAGMENTS = (
    "<reason>", "</reason>", "<answer>", "</answer>", "<search><img></search>",
    "<text_search>", "</text_search>", "<img>", " ", "\n",
)
_CODE_POINT_RANGES = ((0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x4E00, 0x4FFF), (0x1F300, 0x1F5FF))


def _size_range(name: str, floor: int, low: int, high: int, sample_high: int) -> tuple[int, int, int]:
    """(min, max, largest size sampled) of a variable-size space, refusing a range that is empty or
    starts below `floor`; samples stay small (`sample_high`) even when the space admits huge elements."""
    if not floor <= low <= high:
        raise ValueError(f"need {floor} <= min_{name} <= max_{name}, got {low}, {high}")
    return low, high, max(low, min(sample_high, high))


class _ShapelessSpace(spaces.Space[_T]):
    """A space whose elements have no fixed shape, so no single numpy array can hold them flattened."""

    @property
    def is_np_flattenable(self) -> bool:
        return False


class UnicodeText(_ShapelessSpace[str]):
    """Any Python `str` of `min_length`..`max_length` characters (no alphabet restriction)."""

    def __init__(self, max_length: int = 100_000, min_length: int = 0, sample_max_length: int = 200,
                 seed: int | np.random.Generator | None = None) -> None:
        self.min_length, self.max_length, self.sample_max_length = _size_range(
            "length", 0, min_length, max_length, sample_max_length)
        super().__init__(shape=None, dtype=None, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            raise NotImplementedError("UnicodeText.sample does not support masks")
        length = int(self.np_random.integers(self.min_length, self.sample_max_length + 1))
        pieces: list[str] = []
        while sum(map(len, pieces)) < length:
            if self.np_random.random() < 0.3:
                pieces.append(_GRAMMAR_FRAGMENTS[int(self.np_random.integers(len(_GRAMMAR_FRAGMENTS)))])
            else:
                low, high = _CODE_POINT_RANGES[int(self.np_random.integers(len(_CODE_POINT_RANGES)))]
                pieces.append(chr(int(self.np_random.integers(low, high + 1))))
        return "".join(pieces)[:length]

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, UnicodeText) and other.min_length == self.min_length
                and other.max_length == self.max_length)

    def to_jsonable(self, sample_n: Iterable[str]) -> list[str]:
        return list(sample_n)

    def from_jsonable(self, sample_n: list[str]) -> list[str]:
        return list(sample_n)


class RGBImage(_ShapelessSpace[np.ndarray]):
    """An RGB uint8 array of shape (H, W, 3) with `min_side <= H, W <= max_side`."""

    def __init__(self, min_side: int = 1, max_side: int = 8192, sample_max_side: int = 64,
                 seed: int | np.random.Generator | None = None) -> None:
        self.min_side, self.max_side, self.sample_max_side = _size_range(
            "side", 1, min_side, max_side, sample_max_side)
        super().__init__(shape=None, dtype=np.uint8, seed=seed)

    def contains(self, x: Any) -> bool:
        return (isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
                and all(self.min_side <= side <= self.max_side for side in x.shape[:2]))

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise NotImplementedError("RGBImage.sample does not support masks")
        height, width = self.np_random.integers(self.min_side, self.sample_max_side + 1, size=2)
        return self.np_random.integers(0, 256, size=(int(height), int(width), 3), dtype=np.uint8)

    def __repr__(self) -> str:
        return f"RGBImage({self.min_side}..{self.max_side})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RGBImage) and other.min_side == self.min_side
                and other.max_side == self.max_side)


_ROLES = ("system", "user", "assistant")


class ChatMessages(_ShapelessSpace[tuple]):
    """A tuple of chat messages in the HF/OpenAI multimodal format.

    Each message is `{"role": "system"|"user"|"assistant", "content": [part, ...]}`; a part is
    `{"type": "text", "text": str}` or `{"type": "image", "index": i}` with `0 <= i < max_images`
    (the index points into `obs["images"]`).
    """

    def __init__(self, max_messages: int = 64, max_images: int = 64, max_text: int = 1_000_000,
                 seed: int | np.random.Generator | None = None) -> None:
        self.max_messages, self.max_images, self.max_text = max_messages, max_images, max_text
        self._text = UnicodeText(max_length=max_text, sample_max_length=80)
        super().__init__(shape=None, dtype=None, seed=seed)

    def seed(self, seed: int | None = None) -> int | Any:
        seeds = super().seed(seed)
        self._text.seed(int(self.np_random.integers(2**31)))
        return seeds

    def _part_ok(self, part: Any) -> bool:
        if not isinstance(part, dict):
            return False
        if part.get("type") == "text":
            return set(part) == {"type", "text"} and self._text.contains(part["text"])
        if part.get("type") == "image":
            index = part.get("index")
            return (set(part) == {"type", "index"} and isinstance(index, int)
                    and not isinstance(index, bool) and 0 <= index < self.max_images)
        return False

    def contains(self, x: Any) -> bool:
        if not isinstance(x, tuple) or len(x) > self.max_messages:
            return False
        for message in x:
            if not (isinstance(message, dict) and set(message) == {"role", "content"}
                    and message["role"] in _ROLES and isinstance(message["content"], list)):
                return False
            if not all(self._part_ok(part) for part in message["content"]):
                return False
        return True

    def sample(self, mask: Any = None, probability: Any = None) -> tuple:
        if mask is not None or probability is not None:
            raise NotImplementedError("ChatMessages.sample does not support masks")
        count = int(self.np_random.integers(1, min(4, self.max_messages) + 1))
        messages = []
        for position in range(count):
            parts: list[dict] = []
            if position == 0 and self.max_images > 0:
                parts.append({"type": "image", "index": 0})
            parts.append({"type": "text", "text": self._text.sample()})
            messages.append({"role": _ROLES[1 + position % 2], "content": parts})
        return tuple(messages)

    def __repr__(self) -> str:
        return f"ChatMessages(max_messages={self.max_messages}, max_images={self.max_images})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, ChatMessages) and other.max_messages == self.max_messages
                and other.max_images == self.max_images and other.max_text == self.max_text)


class ObservationSpace(spaces.Dict):
    """The env's observation space: a `spaces.Dict` of `images` and `messages`.

    Its own class (not a plain `Dict`) so that `mmsearch_gym.envs.vector` can teach Gymnasium's
    `AsyncVectorEnv` how to pass these variable-size observations between processes with its default
    `shared_memory=True`, without changing how any other env's `Dict` space is handled.
    """
