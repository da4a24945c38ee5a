"""Turn an environment observation into the chat formats model back ends take.

The part converter (validation, image indices, the HF processor format) lives in
`mmsearch_gym.hf.messages`, shared with the trainers; this module re-exports it and adds the
OpenAI-compatible format:

- HF processors (`to_hf_messages`): `{"type": "image"}` parts plus the images in placeholder order.
- OpenAI-compatible servers (`to_openai_messages`): each image part becomes an `image_url` part with
  a base64 `data:` URL (PNG by default: lossless, so the server sees exactly the env's pixels).

Pure Python plus numpy/PIL (no torch), so the OpenAI agent needs no ML stack.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Mapping

from mmsearch_gym.agents.base import Observation
from mmsearch_gym.hf.messages import ROLES, convert_messages, observation_images, to_hf_messages, to_pil

__all__ = ["IMAGE_FORMATS", "ROLES", "assistant_turns", "image_data_url", "to_hf_messages", "to_openai_messages",
           "to_pil"]

IMAGE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


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
    source = observation_images(obs)
    urls: dict[int, str] = {}

    def image_part(index: int) -> dict[str, Any]:
        if index not in urls:
            urls[index] = image_data_url(source[index], image_format)
        return {"type": "image_url", "image_url": {"url": urls[index]}}

    messages: list[dict[str, Any]] = []
    for position, (role, parts) in enumerate(convert_messages(obs, image_part)):
        if role != "assistant":
            messages.append({"role": role, "content": parts})
        elif any(part["type"] != "text" for part in parts):
            raise ValueError(f"message {position}: assistant messages may only hold text parts")
        else:
            messages.append({"role": role, "content": "".join(part["text"] for part in parts)})
    return messages


def assistant_turns(obs: Observation) -> int:
    """How many assistant turns the observation holds (the turn number, per the Agent protocol)."""
    return sum(1 for message in obs["messages"]
               if isinstance(message, Mapping) and message.get("role") == "assistant")
