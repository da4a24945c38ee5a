"""`TransformersAgent`: a local vision-language model driven by 🤗 transformers' `generate`.

Why this shape:
- Local files only (`local_files_only=True`): an evaluation must not fetch or silently update
  weights; the card's weight hash then says exactly which weights produced a run.
- `act_batch` renders every episode's dialog with the processor's chat template and runs one
  left-padded `generate` call (per `max_batch_size` chunk), so many episodes share a forward pass.
- Generation stops at the end of the first action tag (`stopping.py`) and never emits vision
  special tokens (`<|image_pad|>`, `<|video_pad|>`, `<|vision_start|>`, …): a sampled `<|video_pad|>`
  crashes Qwen2.5-VL's rope-index computation on the next turn (docs/trl-multiturn-vlm.md).
- The processor's `mm_token_type_ids` (Qwen2.5-VL) is passed to `generate` with everything else
  the processor returns; without it image tokens silently get 1-D positions.
- Without torchvision (the CPU torch build here), `AutoProcessor` cannot build a video processor and
  fails for Qwen-VL models; `load_processor` then builds the same processor class without its video
  processor (images are all an episode has).

torch and transformers are imported inside functions so that this module imports without them.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mmsearch_gym.agents.base import AgentBase, Observation
from mmsearch_gym.agents.messages import to_hf_messages
from mmsearch_gym.agents.stopping import ACTION_STOP_STRINGS, StopChecker, truncate_at_stop

if TYPE_CHECKING:  # pragma: no cover
    import torch

VISION_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
    "<image>", "<video>", "<|image|>", "<|video|>",
)
"""Vision placeholder/delimiter tokens that are suppressed in generation when the tokenizer has them."""

_VISION_TOKEN_CONFIG_KEYS = ("image_token_id", "video_token_id", "image_token_index", "video_token_index",
                             "vision_start_token_id", "vision_end_token_id")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")
FULL_HASH_LIMIT_BYTES = 4 * 2**30
"""Weights up to this size are hashed in full; above it `weights_fingerprint` samples (see there)."""
_EDGE_BYTES = 2**20
_DTYPE_NAMES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
                "float16": "float16", "fp16": "float16", "half": "float16"}


# ------------------------------------------------------------------------------------------ files

def local_model_dir(model_path: str | Path) -> Path:
    """The model directory as a resolved Path; a clear error when it is not a local model folder."""
    if not isinstance(model_path, (str, Path)) or not str(model_path):
        raise ValueError(f"model_path must be a local directory path, got {model_path!r}")
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model_path {str(model_path)!r} is not a local directory (model agents load "
                                "local files only; download the model first)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model_path {str(model_path)!r} has no config.json; is it a model folder?")
    return path.resolve()


def _weight_files(path: Path) -> list[Path]:
    for pattern in _WEIGHT_PATTERNS:
        files = sorted(path.glob(pattern))
        if files:
            return files
    return []


def _sha256_file(path: Path, hasher: Any) -> None:
    with path.open("rb") as handle:
        for block in iter(functools.partial(handle.read, 2**22), b""):
            hasher.update(block)


def weights_fingerprint(model_path: str | Path, full_hash_limit: int = FULL_HASH_LIMIT_BYTES) -> dict[str, Any]:
    """A hash identifying the model's weights, for the run manifest.

    method "sha256": SHA-256 over every weight file (name, then bytes, files in name order); used
    when the files total at most `full_hash_limit` bytes. method "sampled" (bigger models, where
    reading every byte would take minutes): SHA-256 over config.json, then each file's name, size
    and first and last MiB. A fine-tune rewrites every tensor, so the sampled bytes change with
    it; only edits confined to the middle of a file would go unnoticed. Weight files are
    `*.safetensors` (else `*.bin`, `*.pt`, `*.pth`, `*.gguf`) at the top of the folder.
    """
    path = Path(model_path)
    files = _weight_files(path)
    total = sum(file.stat().st_size for file in files)
    hasher = hashlib.sha256()
    if not files:
        return {"method": "none", "sha256": None, "files": 0, "bytes": 0}
    if total <= full_hash_limit:
        method = "sha256"
        for file in files:
            hasher.update(f"{file.name}\0".encode())
            _sha256_file(file, hasher)
    else:
        method = "sampled"
        config = path / "config.json"
        hasher.update(config.read_bytes() if config.is_file() else b"")
        for file in files:
            size = file.stat().st_size
            hasher.update(f"\0{file.name}\0{size}\0".encode())
            with file.open("rb") as handle:
                hasher.update(handle.read(_EDGE_BYTES))
                handle.seek(max(0, size - _EDGE_BYTES))
                hasher.update(handle.read(_EDGE_BYTES))
    return {"method": method, "sha256": hasher.hexdigest(), "files": len(files), "bytes": total}


def sha256_text(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


# -------------------------------------------------------------------------------------- processor

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


# -------------------------------------------------------------------------------------- stopping

@functools.lru_cache(maxsize=1)
def _stop_criteria_class() -> type:
    import torch
    from transformers import StoppingCriteria

    class ActionStopCriteria(StoppingCriteria):
        """Stops each row once its *generated* text contains a stop string (the prompt is never
        looked at: earlier turns in it end with the same tags)."""

        def __init__(self, tokenizer: Any, checker: StopChecker, prompt_length: int) -> None:
            self.tokenizer = tokenizer
            self.checker = checker
            self.prompt_length = prompt_length

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            start = max(self.prompt_length, input_ids.shape[1] - self.checker.tail_tokens)
            tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([self.checker.hit(tail) for tail in tails], dtype=torch.bool,
                                device=input_ids.device)

    return ActionStopCriteria


@functools.lru_cache(maxsize=1)
def _suppress_processor_class() -> type:
    import torch
    from transformers import LogitsProcessor

    class SuppressTokens(LogitsProcessor):
        """Sets the logits of `token_ids` to -inf. Ours rather than `bad_words_ids` or
        `suppress_tokens`: those build a vocabulary-sized mask every step, which on a 152k
        vocabulary costs more than the tiny test model's whole forward pass."""

        def __init__(self, token_ids: Sequence[int]) -> None:
            self.token_ids = torch.tensor(list(token_ids), dtype=torch.long)

        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            ids = self.token_ids.to(scores.device)
            ids = ids[ids < scores.shape[-1]]
            return scores.index_fill_(-1, ids, float("-inf"))  # a per-step copy of the logits

    return SuppressTokens


# ----------------------------------------------------------------------------------------- agent

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


def _check_number(name: str, value: Any, low: float, integer: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < low:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {low}, got {value!r}")


class TransformersAgent(AgentBase):
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
        from transformers import AutoModelForImageTextToText, GenerationConfig

        _check_number("max_new_tokens", max_new_tokens, 1, integer=True)
        _check_number("temperature", temperature, 0.0)
        _check_number("top_k", top_k, 0, integer=True)
        _check_number("repetition_penalty", repetition_penalty, 0.0)
        _check_number("max_batch_size", max_batch_size, 1, integer=True, allow_none=True)
        _check_number("seed", seed, 0, integer=True, allow_none=True)
        if isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be a number in (0, 1], got {top_p!r}")
        self.model_path = local_model_dir(model_path)
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.checker = StopChecker(stop if stop is not None else ())
        self.max_batch_size = max_batch_size
        self.seed = seed
        self.processor_kwargs = dict(processor_kwargs or {})
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        if name is not None:
            self.name = name

        self.processor = load_processor(self.model_path, **self.processor_kwargs)
        self.tokenizer: Any = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise ValueError(f"the processor in {str(self.model_path)!r} has no tokenizer")
        self.tokenizer.padding_side = "left"
        self.chat_template = chat_template_of(self.processor)
        if self.chat_template is None:
            raise ValueError(f"{str(self.model_path)!r} has no chat template (chat_template.jinja or "
                             "chat_template.json); the agent needs one to render dialogs")

        model_kwargs: dict[str, Any] = {"local_files_only": True, "dtype": self.dtype}
        if attn_implementation is not None:
            model_kwargs["attn_implementation"] = attn_implementation
        model: Any = AutoModelForImageTextToText.from_pretrained(self.model_path, **model_kwargs)
        self.model: Any = model.to(self.device).eval()

        original = self.model.generation_config
        eos = original.eos_token_id if original.eos_token_id is not None else self.tokenizer.eos_token_id
        pad = original.pad_token_id if original.pad_token_id is not None else self.tokenizer.pad_token_id
        if pad is None:
            pad = eos[0] if isinstance(eos, list) else eos
        self.suppressed_token_ids = vision_token_ids(self.processor, self.model.config) \
            if suppress_vision_tokens else []
        sampling = temperature > 0
        self.generation_params: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": sampling,
            "temperature": float(temperature) if sampling else None,
            "top_p": float(top_p) if sampling else None,
            "top_k": int(top_k) if sampling else None,
            "repetition_penalty": float(repetition_penalty),
            "seed": seed,
        }
        # Replace the checkpoint's generation defaults (Qwen ships e.g. repetition_penalty=1.05,
        # top_k=1): `generate` fills every unset field from `model.generation_config`, so only the
        # token ids are kept from it and everything else is what the card says.
        self.model.generation_config = GenerationConfig(
            bos_token_id=original.bos_token_id, eos_token_id=eos, pad_token_id=pad,
            max_new_tokens=max_new_tokens, do_sample=sampling,
            temperature=self.generation_params["temperature"],  # None when greedy: unused there
            top_p=self.generation_params["top_p"],
            top_k=self.generation_params["top_k"],
            repetition_penalty=float(repetition_penalty),
        )
        self._calls = 0
        self._torch = torch
        self._versions = {"transformers": transformers.__version__, "torch": torch.__version__}
        self._fingerprint: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"TransformersAgent(model_path={str(self.model_path)!r}, device={self.device!r})"

    # ------------------------------------------------------------------------------------ prompts

    def render(self, obs: Observation) -> tuple[str, list[Any]]:
        """(prompt text, images in placeholder order) for one observation."""
        messages, images = to_hf_messages(obs)
        text = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                  **self.chat_template_kwargs)
        return text, images

    # -------------------------------------------------------------------------------------- acting

    def act(self, obs: Observation) -> str:
        return self._generate([obs])[0]

    def act_batch(self, observations: Sequence[Observation], infos: Sequence[Mapping[str, Any]]) -> list[str]:
        if len(observations) != len(infos):
            raise ValueError(f"act_batch got {len(observations)} observations but {len(infos)} infos")
        size = self.max_batch_size or max(1, len(observations))
        actions: list[str] = []
        for start in range(0, len(observations), size):
            actions.extend(self._generate(observations[start:start + size]))
        return actions

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
        criteria = [_stop_criteria_class()(self.tokenizer, self.checker, prompt_length)] \
            if self.checker.stop else []
        if self.generation_params["do_sample"] and self.seed is not None:
            torch.manual_seed(self.seed + self._calls)
        self._calls += 1
        from transformers import LogitsProcessorList, StoppingCriteriaList

        processors = [_suppress_processor_class()(self.suppressed_token_ids)] if self.suppressed_token_ids else []
        with torch.inference_mode():
            output = self.model.generate(**batch, stopping_criteria=StoppingCriteriaList(criteria),
                                         logits_processor=LogitsProcessorList(processors))
        completions = self.tokenizer.batch_decode(output[:, prompt_length:], skip_special_tokens=True)
        return [truncate_at_stop(text, self.checker.stop) for text in completions]

    # ---------------------------------------------------------------------------------------- card

    def card(self) -> dict[str, Any]:
        if self._fingerprint is None:
            self._fingerprint = weights_fingerprint(self.model_path)
        return {
            **super().card(),
            "backend": "transformers",
            "model_path": str(self.model_path),
            "model_type": getattr(self.model.config, "model_type", None),
            "weights": dict(self._fingerprint),
            "chat_template_sha256": sha256_text(self.chat_template),
            "generation": dict(self.generation_params),
            "stop": list(self.checker.stop),
            "suppressed_token_ids": list(self.suppressed_token_ids),
            "max_batch_size": self.max_batch_size,
            "processor_kwargs": dict(self.processor_kwargs),
            "chat_template_kwargs": dict(self.chat_template_kwargs),
            "device": self.device,
            "dtype": str(self.dtype).removeprefix("torch."),
            "versions": dict(self._versions),
        }
