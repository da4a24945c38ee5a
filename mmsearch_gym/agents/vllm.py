"""`VLLMAgent`: a local VLM on vLLM's offline engine (`vllm.LLM`), for fast batched evaluation on GPUs.

Why this shape:
- The prompt is rendered by the model's own HF processor chat template (one image placeholder per
  image part, unexpanded: vLLM expands placeholders itself) and the images go alongside as
  `multi_modal_data={"image": [PIL, …]}` in placeholder order, the layout vLLM's multimodal
  models expect.
- `act_batch` hands every episode to one `LLM.generate` call; vLLM schedules them together.
- `SamplingParams(stop=…, include_stop_str_in_output=True)` ends the turn at the first action tag
  and keeps the tag (the env needs it); the text is still cut with `truncate_at_stop` for safety.
- With a seed, each request carries `SamplingParams.seed`, so an episode's sampling does not depend
  on which other episodes share its batch.
- `vllm` is imported inside `__init__`: this module imports (and the package works) without vLLM,
  which only installs on CUDA machines (`pip install 'mmsearch-gym[vllm]'`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmsearch_gym.agents.base import LocalModelAgent, Observation
from mmsearch_gym.agents.stopping import ACTION_STOP_STRINGS, truncate_at_stop
from mmsearch_gym.checks import require_int, require_number
from mmsearch_gym.hf.processor import VISION_SPECIAL_TOKENS

DEFAULT_MAX_IMAGES = 16
"""Images per prompt vLLM reserves room for by default (question image + 5 thumbnails per image
search, with headroom for custom configurations)."""


def _accepts(callable_: Any, name: str) -> bool:
    """Whether `callable_` takes keyword `name` (vLLM's SamplingParams gains and loses fields)."""
    try:
        parameters = inspect.signature(callable_).parameters
    except (TypeError, ValueError):
        return True
    return name in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


class VLLMAgent(LocalModelAgent):
    """A local VLM run with vLLM's offline engine (GPU only).

    Args:
        model_path: a local model folder.
        temperature: 0 = greedy (default); top_p, top_k (-1: off) apply when sampling.
        max_new_tokens: generation length limit per turn.
        seed: per-request sampling seed (and the engine seed).
        stop: stop strings (default: the action closing tags).
        suppress_vision_tokens: forbid vision special tokens via `SamplingParams.bad_words` when the
            installed vLLM has it.
        max_images_per_prompt: `limit_mm_per_prompt["image"]` for the engine.
        dtype, max_model_len, gpu_memory_utilization, tensor_parallel_size: engine arguments.
        processor_kwargs / chat_template_kwargs: for the HF processor that renders prompts.
        llm_kwargs: any other `vllm.LLM` arguments (e.g. `mm_processor_kwargs`, `enforce_eager`).
    """

    name = "vllm"

    def __init__(
        self,
        model_path: str | Path,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = -1,
        max_new_tokens: int = 512,
        seed: int | None = None,
        stop: Sequence[str] | None = ACTION_STOP_STRINGS,
        suppress_vision_tokens: bool = True,
        max_images_per_prompt: int = DEFAULT_MAX_IMAGES,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        tensor_parallel_size: int = 1,
        processor_kwargs: Mapping[str, Any] | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        llm_kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        try:
            import vllm
        except ImportError as error:
            raise ImportError("VLLMAgent needs vLLM, which runs on CUDA GPUs only: "
                              "pip install 'mmsearch-gym[vllm]'") from error
        for label, value in (("max_new_tokens", max_new_tokens), ("max_images_per_prompt", max_images_per_prompt),
                             ("tensor_parallel_size", tensor_parallel_size)):
            require_int(label, value, low=1)
        temperature = require_number("temperature", temperature, low=0.0)
        top_p = require_number("top_p", top_p, low=0.0, high=1.0, low_inclusive=False)
        top_k = require_int("top_k", top_k, low=1, allow=(-1, 0))  # -1/0: off
        if seed is not None:
            seed = require_int("seed", seed, low=0)
        gpu_memory_utilization = require_number("gpu_memory_utilization", gpu_memory_utilization, low=0.0,
                                                high=1.0, low_inclusive=False)

        self._open_model_folder(model_path, stop, processor_kwargs, chat_template_kwargs, name)
        tokenizer = getattr(self.processor, "tokenizer", self.processor)
        vocab = tokenizer.get_vocab()
        self.bad_words = [token for token in VISION_SPECIAL_TOKENS if token in vocab] if suppress_vision_tokens else []

        self.engine_args: dict[str, Any] = {
            "model": str(self.model_path), "tokenizer": str(self.model_path), "dtype": dtype,
            "gpu_memory_utilization": float(gpu_memory_utilization), "tensor_parallel_size": tensor_parallel_size,
            "limit_mm_per_prompt": {"image": max_images_per_prompt},
        }
        if max_model_len is not None:
            self.engine_args["max_model_len"] = max_model_len
        if seed is not None:
            self.engine_args["seed"] = seed
        self.engine_args.update(dict(llm_kwargs or {}))
        self.llm = vllm.LLM(**self.engine_args)

        self.sampling_args: dict[str, Any] = {
            "temperature": float(temperature), "top_p": float(top_p), "top_k": top_k,
            "max_tokens": max_new_tokens, "seed": seed, "skip_special_tokens": True,
        }
        if self.stop:
            self.sampling_args.update(stop=list(self.stop), include_stop_str_in_output=True)
        if self.bad_words and _accepts(vllm.SamplingParams, "bad_words"):
            self.sampling_args["bad_words"] = list(self.bad_words)
        self.sampling_params = vllm.SamplingParams(**self.sampling_args)
        self._vllm_version = getattr(vllm, "__version__", "unknown")

    def __repr__(self) -> str:
        return f"VLLMAgent(model_path={str(self.model_path)!r})"

    def request(self, obs: Observation) -> dict[str, Any]:
        """The engine input for one observation: `{"prompt", "multi_modal_data"}`."""
        prompt, images = self.render(obs)
        request: dict[str, Any] = {"prompt": prompt}
        if images:
            request["multi_modal_data"] = {"image": images}
        return request

    def _generate(self, observations: Sequence[Observation]) -> list[str]:
        if not observations:
            return []
        requests = [self.request(obs) for obs in observations]
        outputs = self.llm.generate(requests, self.sampling_params, use_tqdm=False)
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
        return [truncate_at_stop(output.outputs[0].text, self.stop) for output in outputs]

    def card(self) -> dict[str, Any]:
        return {
            **super().card(),
            "backend": "vllm",
            "generation": {key: value for key, value in self.sampling_args.items()
                           if key not in ("stop", "include_stop_str_in_output", "bad_words")},
            "bad_words": list(self.sampling_args.get("bad_words", [])),
            "engine": {key: value for key, value in self.engine_args.items() if key not in ("model", "tokenizer")},
            "versions": {"vllm": self._vllm_version},
        }
