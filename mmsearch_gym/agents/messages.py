"""Turn an environment observation into the chat formats model back ends take.

The env's messages reference images by position (`{"type": "image", "index": i}` → `obs["images"][i]`)
so an observation stays small and picklable. Back ends want the images placed differently:

- HF processors (`to_hf_messages`): the chat template renders one image placeholder per
  `{"type": "image"}` part, and the processor pairs placeholders with a flat list of images *in the
  order the parts appear*. So we return the messages and that ordered list (an image referenced
  twice appears twice).
- OpenAI-compatible servers (`to_openai_messages`): each image part becomes an `image_url` part with
  a base64 `data:` URL (PNG by default: lossless, so the server sees exactly the env's pixels).

Pure Python plus numpy/PIL (no torch), so the OpenAI agent needs no ML stack.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from mmsearch_gym.agents.base import Observation

ROLES = ("system", "user", "assistant")
IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


def _images(obs: Observation) -> Sequence[Any]:
    if not isinstance(obs, Mapping) or "messages" not in obs or "images" not in obs:
        raise ValueError("an observation must be a mapping with 'images' and 'messages', got "
                         f"{type(obs).__name__} with keys {sorted(obs) if isinstance(obs, Mapping) else '-'}")
    images = obs["images"]
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence):
        raise ValueError(f"obs['images'] must be a sequence of images, got {type(images).__name__}")
    return images


def _parts(message: Any, position: int) -> tuple[str, list[Mapping[str, Any]]]:
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
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < count:
        raise ValueError(f"message {position} has an image part with index {index!r}, but the "
                         f"observation has {count} image(s)")
    return int(index)


def _content(parts: list[Mapping[str, Any]], position: int, count: int,
             image_part: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy text parts and turn each image part into `image_part(index)` (the index checked)."""
    return [{"type": "text", "text": part["text"]} if part["type"] == "text"
            else image_part(_image_index(part, count, position)) for part in parts]


def to_pil(image: Any) -> Image.Image:
    """An RGB PIL image from an RGB uint8 array (H, W, 3) or a PIL image."""
    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"images must be RGB uint8 arrays of shape (H, W, 3), got "
                         f"{array.dtype} array of shape {array.shape}")
    return Image.fromarray(np.ascontiguousarray(array))


def to_hf_messages(obs: Observation) -> tuple[list[dict[str, Any]], list[Image.Image]]:
    """(messages, images) for an HF processor's `apply_chat_template` and `__call__`.

    Image parts become `{"type": "image"}`; `images` holds one PIL image per image part, in the
    order the parts appear across messages (the order the template emits placeholders).
    """
    source = _images(obs)
    converted: dict[int, Image.Image] = {}
    messages: list[dict[str, Any]] = []
    ordered: list[Image.Image] = []

    def image_part(index: int) -> dict[str, Any]:
        if index not in converted:
            converted[index] = to_pil(source[index])
        ordered.append(converted[index])
        return {"type": "image"}

    for position, message in enumerate(obs["messages"]):
        role, parts = _parts(message, position)
        messages.append({"role": role, "content": _content(parts, position, len(source), image_part)})
    return messages, ordered


def image_data_url(image: Any, image_format: str = "PNG") -> str:
    """A `data:` URL holding the image encoded as `image_format` (PNG, JPEG or WEBP)."""
    mime = IMAGE_FORMATS.get(image_format.upper()) if isinstance(image_format, str) else None
    if mime is None:
        raise ValueError(f"image_format must be one of {sorted(IMAGE_FORMATS)}, got {image_format!r}")
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format=image_format.upper())
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def to_openai_messages(obs: Observation, image_format: str = "PNG") -> list[dict[str, Any]]:
    """Chat-completions messages: image parts become `image_url` parts with base64 data URLs.

    Assistant turns (always text) are sent as plain strings, which every OpenAI-compatible server
    accepts; user and system turns keep the list-of-parts form so images stay in place.
    """
    source = _images(obs)
    urls: dict[int, str] = {}
    messages: list[dict[str, Any]] = []

    def image_part(index: int) -> dict[str, Any]:
        if index not in urls:
            urls[index] = image_data_url(source[index], image_format)
        return {"type": "image_url", "image_url": {"url": urls[index]}}

    for position, message in enumerate(obs["messages"]):
        role, parts = _parts(message, position)
        if role == "assistant":
            if any(part["type"] != "text" for part in parts):
                raise ValueError(f"message {position}: assistant messages may only hold text parts")
            messages.append({"role": role, "content": "".join(part["text"] for part in parts)})
            continue
        messages.append({"role": role, "content": _content(parts, position, len(source), image_part)})
    return messages


def assistant_turns(obs: Observation) -> int:
    """How many assistant turns the observation holds (the turn number, per the Agent protocol)."""
    return sum(1 for message in obs["messages"]
               if isinstance(message, Mapping) and message.get("role") == "assistant")
