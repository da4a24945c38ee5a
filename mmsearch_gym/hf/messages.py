"""Environment observations as chat messages for HF processors, and the part converter every chat
format is built on.

The env's messages reference images by position (`{"type": "image", "index": i}` → `obs["images"][i]`)
so an observation stays small and picklable. An HF processor's chat template renders one image
placeholder per `{"type": "image"}` part, and the processor pairs placeholders with a flat list of
images *in the order the parts appear*; so `to_hf_messages` returns the messages and that ordered list
(an image referenced twice appears twice).

`convert_messages` validates an observation once and hands each image part to a callback, so other
formats (the OpenAI `image_url` parts in `mmsearch_gym.agents.messages`) reuse the same checks.
Pure Python plus numpy/PIL (no torch).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from mmsearch_gym.checks import require_int

__all__ = ["ROLES", "ImagePart", "convert_messages", "observation_images", "message_parts", "to_hf_messages",
           "to_pil"]

ROLES = ("system", "user", "assistant")
ImagePart = Callable[[int], dict[str, Any]]
"""Builds the converted part for the image at an index of `obs["images"]`."""


def observation_images(obs: Mapping[str, Any]) -> Sequence[Any]:
    """`obs["images"]`, after checking that `obs` is an observation (a mapping with images and messages)."""
    if not isinstance(obs, Mapping) or "messages" not in obs or "images" not in obs:
        raise ValueError("an observation must be a mapping with 'images' and 'messages', got "
                         f"{type(obs).__name__} with keys {sorted(obs) if isinstance(obs, Mapping) else '-'}")
    images = obs["images"]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError(f"obs['images'] must be a sequence of images, got {type(images).__name__}")
    return images


def message_parts(message: Any, position: int) -> tuple[str, list[Mapping[str, Any]]]:
    """(role, content parts) of one message, validated; a string content is one text part."""
    if not isinstance(message, Mapping):
        raise ValueError(f"message {position} must be a mapping, got {type(message).__name__}")
    role = message.get("role")
    if role not in ROLES:
        raise ValueError(f"message {position} has role {role!r}; expected one of {ROLES}")
    content = message.get("content")
    if isinstance(content, str):
        return role, [{"type": "text", "text": content}]
    if isinstance(content, (bytes, bytearray)) or not isinstance(content, Sequence):
        raise ValueError(f"message {position} content must be a string or a list of parts, "
                         f"got {type(content).__name__}")
    parts = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") not in ("text", "image"):
            raise ValueError(f"message {position} has an unsupported part {part!r}; "
                             "parts are {'type': 'text', 'text': ...} or {'type': 'image', 'index': i}")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise ValueError(f"message {position} has a text part without a string 'text': {part!r}")
        parts.append(part)
    return role, parts


def _image_index(part: Mapping[str, Any], count: int, position: int) -> int:
    index = part.get("index")
    try:
        return require_int("index", index, low=0, high=count - 1)
    except ValueError:
        raise ValueError(f"message {position} has an image part with index {index!r}, but the "
                         f"observation has {count} image(s)") from None


def convert_messages(obs: Mapping[str, Any], image_part: ImagePart) -> list[tuple[str, list[dict[str, Any]]]]:
    """(role, converted parts) per message of `obs`: text parts copied, each image part replaced by
    `image_part(index)` (the index checked against `obs["images"]`), in message and part order."""
    count = len(observation_images(obs))
    converted = []
    for position, message in enumerate(obs["messages"]):
        role, parts = message_parts(message, position)
        converted.append((role, [{"type": "text", "text": part["text"]} if part["type"] == "text"
                                 else image_part(_image_index(part, count, position)) for part in parts]))
    return converted


def to_pil(image: Any) -> Image.Image:
    """An RGB PIL image from an RGB uint8 array (H, W, 3) or a PIL image."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"images must be RGB uint8 arrays of shape (H, W, 3), got "
                         f"{array.dtype} array of shape {array.shape}")
    return Image.fromarray(np.ascontiguousarray(array))


def to_hf_messages(obs: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """(messages, images) for an HF processor's `apply_chat_template` and `__call__`.

    Image parts become `{"type": "image"}`; `images` holds one PIL image per image part, in the
    order the parts appear across messages (the order the template emits placeholders).
    """
    source = observation_images(obs)
    converted: dict[int, Image.Image] = {}
    ordered: list[Image.Image] = []

    def image_part(index: int) -> dict[str, Any]:
        if index not in converted:
            converted[index] = to_pil(source[index])
        ordered.append(converted[index])
        return {"type": "image"}

    messages = [{"role": role, "content": parts} for role, parts in convert_messages(obs, image_part)]
    return messages, ordered
