"""The model's HF processor, its chat template and its vision special tokens.

Why `load_processor` exists: without torchvision (the CPU torch build), `AutoProcessor` cannot build a
video processor and fails for Qwen-VL models; the same processor class without its video processor
loads and runs on images, which are all an episode has.

Why the vision-token ids matter: a sampled `<|video_pad|>` (or any vision placeholder) crashes
Qwen2.5-VL's rope-index computation on the next turn (docs/trl-multiturn-vlm.md), so generation
suppresses every id `vision_token_ids` returns.

transformers is imported inside functions.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Mapping

from mmsearch_gym.hf.model_files import local_model_dir

__all__ = ["VISION_SPECIAL_TOKENS", "chat_template_of", "load_processor", "vision_token_ids",
           "without_video_processor"]

VISION_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<image>", "<video>", "<|image|>", "<|video|>",
)
"""Vision placeholder/delimiter tokens that are suppressed in generation when the tokenizer has them."""

_VISION_TOKEN_CONFIG_KEYS = ("image_token_id", "video_token_id", "image_token_index", "video_token_index",
                             "vision_start_token_id", "vision_end_token_id")


def without_video_processor(processor_class: Any) -> Any:
    """A subclass of `processor_class` whose sub-processors exclude the video processor.

    `ProcessorMixin` builds and checks one sub-processor per entry of `get_attributes()`; dropping
    the video entry lets Qwen-VL processors load and run on images without torchvision.
    """
    attributes = [name for name in processor_class.get_attributes() if "video" not in name]
    return type(processor_class.__name__, (processor_class,), {
        "__module__": processor_class.__module__,
        "__doc__": f"{processor_class.__name__} without its video processor (no torchvision needed).",
        "get_attributes": classmethod(lambda cls: list(attributes)),
    })


def _processor_class_name(path: Path) -> str | None:
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        file = path / name
        if file.is_file():
            value = json.loads(file.read_text(encoding="utf-8")).get("processor_class")
            if value:
                return value
    config = path / "config.json"
    model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type") if config.is_file() else None
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    return PROCESSOR_MAPPING_NAMES.get(model_type) if model_type else None


def load_processor(model_path: str | Path, **kwargs: Any) -> Any:
    """The model's processor from local files; without torchvision, the same class minus its video
    processor. `kwargs` go to `from_pretrained` (e.g. `max_pixels` for Qwen-VL image processors)."""
    from transformers import AutoProcessor

    path = local_model_dir(model_path)
    if importlib.util.find_spec("torchvision") is not None:
        return AutoProcessor.from_pretrained(path, local_files_only=True, **kwargs)
    class_name = _processor_class_name(path)
    if class_name is None:
        return AutoProcessor.from_pretrained(path, local_files_only=True, **kwargs)
    from transformers.models.auto.processing_auto import processor_class_from_name

    processor_class: Any = processor_class_from_name(class_name)
    if processor_class is None:
        raise ValueError(f"processor class {class_name!r} named in {str(path)!r} is not in transformers")
    return without_video_processor(processor_class).from_pretrained(path, local_files_only=True, **kwargs)


def chat_template_of(processor: Any) -> str | None:
    """The processor's (or its tokenizer's) default chat template, or None when it has none."""
    template = getattr(processor, "chat_template", None)
    if template is None:
        template = getattr(getattr(processor, "tokenizer", None), "chat_template", None)
    if isinstance(template, Mapping):  # named templates: the default one renders our prompts
        template = template.get("default")
    return template if isinstance(template, str) else None


def vision_token_ids(processor: Any, model_config: Any = None) -> list[int]:
    """Ids of the vision special tokens known to the tokenizer (and named in the model config)."""
    tokenizer = getattr(processor, "tokenizer", processor)
    vocab = tokenizer.get_vocab()
    ids = {vocab[token] for token in VISION_SPECIAL_TOKENS if token in vocab}
    for attribute in ("image_token", "video_token"):
        token = getattr(processor, attribute, None)
        if isinstance(token, str) and token in vocab:
            ids.add(vocab[token])
    configs = [model_config, getattr(model_config, "text_config", None)] if model_config is not None else []
    for config in configs:
        for key in _VISION_TOKEN_CONFIG_KEYS:
            value = getattr(config, key, None)
            if isinstance(value, int) and value >= 0:
                ids.add(value)
    return sorted(ids)
