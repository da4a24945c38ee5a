"""A tiny random Qwen2.5-VL with a small trained vocabulary, built offline.

Why: examples, smoke runs and tests must train end to end without downloading anything, and on two
CPU cores. Qwen's real 152k-token vocabulary makes the LM head and every sampling step the dominant
cost (see docs/trl-multiturn-vlm.md: ~1 s/step with a tiny vocabulary vs 25-38 s with the
real one), so the tokenizer here is a byte-level BPE trained (deterministically, in-process) on the
environment's own prompt texts, with Qwen2.5's special tokens, pre-tokenizer and chat template. The
model is the real Qwen2.5-VL architecture (vision tower, multimodal RoPE, `<|image_pad|>` tokens), so
everything that matters for multi-turn VLM training is exercised; only the weights are random.

`build_tiny_vlm(out_dir)` writes a model folder loadable with `from_pretrained` and
`mmsearch_gym.hf.load_processor`. torch/transformers/tokenizers are imported inside.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from mmsearch_gym.checks import require_int

QWEN2_5_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
"""Qwen2.5's added tokens (same strings as the real checkpoints, ids 0..21 here)."""

QWEN_PRETOKENIZE_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                          r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
"""Qwen2's pre-tokenizer split (as in transformers' Qwen2Tokenizer)."""

QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen2.5-VL-Instruct's chat template, verbatim."""

MARKER_FILE = ".complete"


def _training_texts() -> list[str]:
    """What the BPE is trained on: every prompt template, the action grammar, digits and a few
    answer-like words, so prompts tokenise to a few hundred tokens and actions to a few dozen."""
    from dataclasses import asdict

    from mmsearch_gym.envs.prompts import PromptSet

    prompts = [text for text in asdict(PromptSet()).values() if isinstance(text, str)]
    actions = [
        "<reason>I need to identify what the image shows.</reason><search><img></search>",
        "<reason>I need a fact about it.</reason><text_search>Velmora Guild founded</text_search>",
        "<reason>I know the answer.</reason><answer>1887</answer>",
        "<reason>The results say so.</reason><answer>blue</answer>",
    ]
    words = ["0 1 2 3 4 5 6 7 8 9 10 100 1000 1887 1900 2000 2024",
             "red green blue yellow white black orange purple circle square triangle star",
             "founded launched built motto capital river mountain city guild society order",
             "Which What Who When Where How year name colour color shape number emblem image"]
    return prompts * 4 + actions * 8 + words


def train_tokenizer(vocab_size: int = 512, texts: Sequence[str] = ()):  # -> transformers.Qwen2Tokenizer
    """A Qwen2-style byte-level BPE tokenizer with `vocab_size` entries (specials included).

    `texts` are trained on besides the env's prompts and grammar (e.g. a training split's questions and
    search results, so its words and name syllables get their own tokens)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    vocab_size = require_int("vocab_size", vocab_size, low=256 + len(QWEN2_5_SPECIAL_TOKENS))  # bytes + specials
    backend = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(QWEN2_5_SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator([*_training_texts(), *texts], trainer=trainer)
    backend.add_special_tokens([AddedToken(token, normalized=False, special=True)
                                for token in QWEN2_5_SPECIAL_TOKENS])
    return Qwen2Tokenizer(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                          unk_token=None, bos_token=None)


def build_tiny_vlm(out_dir: str | Path, *, seed: int = 0, vocab_size: int = 512, hidden_size: int = 64,
                   num_layers: int = 2, num_heads: int = 4, vision_hidden_size: int = 32,
                   max_image_tokens: int = 16, overwrite: bool = False, texts: Sequence[str] = (),
                   intermediate_size: int | None = None, vision_depth: int = 2) -> Path:
    """Write a tiny random Qwen2.5-VL (weights, processor, chat template) to `out_dir`; return the path.

    A finished folder (marker file) is reused unless `overwrite`. Images are resized to between 4 and
    `max_image_tokens` image tokens (28x28 pixels each). Embeddings are untied (a tied tiny random
    model tends to repeat one token forever). `texts` extend the tokenizer's training texts
    (`train_tokenizer`); `intermediate_size` defaults to twice `hidden_size`; `vision_depth` is the
    number of vision-tower blocks (the last one uses full attention, as in Qwen2.5-VL).
    """
    out = Path(out_dir)
    if (out / MARKER_FILE).is_file() and not overwrite:
        return out
    if out.exists() and any(out.iterdir()):
        if not overwrite and not (out / MARKER_FILE).is_file():
            raise FileExistsError(f"{str(out)!r} exists and is not a finished tiny model folder; "
                                  "pass overwrite=True (--overwrite) or choose another directory")
        shutil.rmtree(out)
    for name, value, low in (("hidden_size", hidden_size, 16), ("num_layers", num_layers, 1),
                             ("num_heads", num_heads, 1), ("vision_hidden_size", vision_hidden_size, 16),
                             ("max_image_tokens", max_image_tokens, 4), ("vision_depth", vision_depth, 1)):
        require_int(name, value, low=low)
    if hidden_size % num_heads or (hidden_size // num_heads) % 8:
        raise ValueError(f"hidden_size/num_heads must be a multiple of 8 (multimodal RoPE sections), "
                         f"got hidden_size={hidden_size}, num_heads={num_heads}")

    import torch
    from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from mmsearch_gym.hf.processor import without_video_processor

    if intermediate_size is not None:
        require_int("intermediate_size", intermediate_size, low=1)
    tokenizer = train_tokenizer(vocab_size, texts)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN2_5_SPECIAL_TOKENS}
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * max_image_tokens)
    processor = without_video_processor(Qwen2_5_VLProcessor)(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_5_VL_CHAT_TEMPLATE)
    half = hidden_size // num_heads // 2  # multimodal RoPE splits half a head over (t, h, w) as Qwen does
    mrope = [half // 4, (half - half // 4) // 2, half - half // 4 - (half - half // 4) // 2]
    rows = -(-len(tokenizer) // 64) * 64  # embedding rows padded past the tokenizer, as Qwen checkpoints do
    text = {"vocab_size": rows, "hidden_size": hidden_size, "intermediate_size": intermediate_size or 2 * hidden_size,
            "num_hidden_layers": num_layers, "num_attention_heads": num_heads,
            "num_key_value_heads": max(1, num_heads // 2), "max_position_embeddings": 8192,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
            "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"]}
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config={"depth": vision_depth, "hidden_size": vision_hidden_size,
                       "intermediate_size": 2 * vision_hidden_size, "num_heads": max(1, vision_hidden_size // 16),
                       "out_hidden_size": hidden_size, "fullatt_block_indexes": [vision_depth - 1],
                       "window_size": 112},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"])
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / MARKER_FILE).write_text("ok\n")
    return out
