"""`TransformersAgent`: a local vision-language model driven by 🤗 transformers' `generate`.

Why this shape:
- Local files only (`local_files_only=True`): an evaluation must not fetch or silently update
  weights; the card's weight hash then says exactly which weights produced a run.
- `act_batch` renders every episode's dialog with the processor's chat template and runs one
  left-padded `generate` call (per `max_batch_size` chunk), so many episodes share a forward pass.
- A turn is generated exactly as the trainers' rollout generates it (`mmsearch_gym.hf`): the same
  `GenerationConfig` (eos ids, pad id, no checkpoint defaults), the same stop criterion (end of the
  first action tag) and the same suppression of vision special tokens (`<|image_pad|>`,
  `<|video_pad|>`, `<|vision_start|>`, …: a sampled `<|video_pad|>` crashes Qwen2.5-VL's rope-index
  computation on the next turn, docs/trl-multiturn-vlm.md).
- The processor's `mm_token_type_ids` (Qwen2.5-VL) is passed to `generate` with everything else
  the processor returns; without it image tokens silently get 1-D positions.

The model-folder, processor and generation helpers that used to live here are re-exported from
`mmsearch_gym.hf` so old imports keep working. torch and transformers are imported inside functions
so that this module imports without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mmsearch_gym.agents.base import LocalModelAgent, Observation
from mmsearch_gym.agents.stopping import ACTION_STOP_STRINGS, StopChecker, truncate_at_stop
from mmsearch_gym.checks import require_int
from mmsearch_gym.hf.generation import GenerationSettings, build_generation_config, suppress_tokens_processor
from mmsearch_gym.hf.model_files import (  # noqa: F401 - re-exported (public import path)
    FULL_HASH_LIMIT_BYTES,
    local_model_dir,
    sha256_text,
    weights_fingerprint,
)
from mmsearch_gym.hf.processor import (  # noqa: F401 - re-exported (public import path)
    VISION_SPECIAL_TOKENS,
    chat_template_of,
    load_processor,
    vision_token_ids,
    without_video_processor,
)
from mmsearch_gym.hf.stopping import stop_criteria

if TYPE_CHECKING:  # pragma: no cover
    import torch

_DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                "float16": "float16", "fp16": "float16", "half": "float16"}


def _resolve_device(device: str) -> str:
    import torch

    if not isinstance(device, str):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from error
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available (torch {torch.__version__})")
    return device


def _resolve_dtype(dtype: Any, device: str) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if isinstance(dtype, str) and dtype.lower() in _DTYPE_NAMES:
        return getattr(torch, _DTYPE_NAMES[dtype.lower()])
    raise ValueError(f"dtype must be 'auto', 'float32', 'bfloat16', 'float16' or a torch.dtype, got {dtype!r}")


class TransformersAgent(LocalModelAgent):
    """A local VLM (e.g. Qwen2.5-VL) run with transformers' `generate`.

    Args:
        model_path: a local model folder (config, weights, processor files, chat template).
        device: "cpu", "cuda", "cuda:N", or "auto" (CUDA when available, else CPU).
        dtype: "auto" (bf16/fp16 on CUDA, fp32 on CPU), "float32", "bfloat16", "float16" or a torch.dtype.
        max_new_tokens: generation length limit per turn.
        temperature: 0 = greedy (default); > 0 samples with `top_p`/`top_k`.
        top_p, top_k: sampling filters (ignored when greedy); top_k=0 disables it.
        repetition_penalty: 1.0 = none (set explicitly, so a checkpoint's own default never applies).
        seed: with sampling, torch's RNG is seeded with `seed + n` before the n-th generate call, so a
            run repeats exactly when episodes come in the same order and batches.
        stop: stop strings (default: the action closing tags); the turn is cut just after the first.
        suppress_vision_tokens: forbid vision special tokens in the output (default True).
        max_batch_size: `act_batch` runs one generate call per chunk of this many episodes (None: all).
        processor_kwargs: extra `from_pretrained` arguments for the processor (e.g. `max_pixels`).
        chat_template_kwargs: extra arguments for `apply_chat_template`.
        attn_implementation: passed to the model's `from_pretrained` (e.g. "sdpa", "eager").
    """

    name = "transformers"

    def __init__(
        self,
        model_path: str | Path,
        device: str = "cpu",
        dtype: Any = "auto",
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        repetition_penalty: float = 1.0,
        seed: int | None = None,
        stop: Sequence[str] | None = ACTION_STOP_STRINGS,
        suppress_vision_tokens: bool = True,
        max_batch_size: int | None = None,
        processor_kwargs: Mapping[str, Any] | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        attn_implementation: str | None = None,
        name: str | None = None,
    ) -> None:
        import torch
        import transformers
        from transformers import AutoModelForImageTextToText

        self.settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                           top_k=top_k, repetition_penalty=repetition_penalty,
                                           max_batch_size=max_batch_size)
        if seed is not None:
            seed = require_int("seed", seed, low=0)
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.processor_kwargs = dict(processor_kwargs or {})
        self._open_model_folder(model_path, stop, self.processor_kwargs, chat_template_kwargs, name)
        self.checker = StopChecker(self.stop)
        self.max_batch_size = self.settings.max_batch_size
        self.seed = seed
        self.tokenizer: Any = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ValueError(f"the processor in {str(self.model_path)!r} has no tokenizer")
        self.tokenizer.padding_side = "left"

        model_kwargs: dict[str, Any] = {"local_files_only": True, "dtype": self.dtype}
        if attn_implementation is not None:
            model_kwargs["attn_implementation"] = attn_implementation
        model: Any = AutoModelForImageTextToText.from_pretrained(self.model_path, **model_kwargs)
        self.model: Any = model.to(self.device).eval()

        self.suppressed_token_ids = vision_token_ids(self.processor, self.model.config) \
            if suppress_vision_tokens else []
        self.generation_params: dict[str, Any] = {**self.settings.sampling_fields(), "seed": seed}
        # Installed for good: the checkpoint's own defaults must never apply (see hf.generation).
        self.model.generation_config, self.special_ids = build_generation_config(
            self.settings, self.model.generation_config, self.tokenizer)
        self._calls = 0
        self._torch = torch
        self._versions = {"transformers": transformers.__version__, "torch": torch.__version__}

    def __repr__(self) -> str:
        return f"TransformersAgent(model_path={str(self.model_path)!r}, device={self.device!r})"

    # -------------------------------------------------------------------------------------- acting

    def _generate(self, observations: Sequence[Observation]) -> list[str]:
        if not observations:
            return []
        torch = self._torch
        texts, images = [], []
        for obs in observations:
            text, obs_images = self.render(obs)
            texts.append(text)
            images.append(obs_images)
        has_images = any(images)
        inputs = self.processor(text=texts, images=images if has_images else None, padding=True,
                                return_tensors="pt")
        batch = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if torch.is_floating_point(value):
                    value = value.to(self.dtype)
            batch[key] = value
        prompt_length = batch["input_ids"].shape[1]
        criteria = stop_criteria(self.tokenizer, self.checker, prompt_length)
        if self.settings.do_sample and self.seed is not None:
            torch.manual_seed(self.seed + self._calls)
        self._calls += 1
        from transformers import LogitsProcessorList, StoppingCriteriaList

        processors = suppress_tokens_processor(self.suppressed_token_ids)
        with torch.inference_mode():
            output = self.model.generate(**batch, stopping_criteria=StoppingCriteriaList(criteria),
                                         logits_processor=LogitsProcessorList(processors))
        completions = self.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        return [truncate_at_stop(text, self.checker.stop) for text in completions]

    # ---------------------------------------------------------------------------------------- card

    def card(self) -> dict[str, Any]:
        return {
            **super().card(),
            "backend": "transformers",
            "model_type": getattr(self.model.config, "model_type", None),
            "generation": dict(self.generation_params),
            "eos_token_ids": list(self.special_ids.eos),
            "suppressed_token_ids": list(self.suppressed_token_ids),
            "max_batch_size": self.max_batch_size,
            "processor_kwargs": dict(self.processor_kwargs),
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            "versions": dict(self._versions),
        }
