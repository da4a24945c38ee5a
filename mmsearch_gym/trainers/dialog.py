"""Token-level rendering of environment dialogs, one turn at a time.

Why turn by turn: a policy's tokens must be trained exactly as they were sampled. Decoding a dialog
and re-tokenising it changes token boundaries (BPE merges across turn edges, stop strings cut inside
a token), so the sampled ids and the trained ids would differ and the log-probabilities with them.
So a dialog is built by appending: the prompt rendered once, then per turn the policy's own ids, the
chat template's end-of-turn token, and the *suffix* the template adds for the next user turn,
rendered alone (same trick as TRL's `_get_tool_suffix_ids`: render a dummy dialog with and without
the new message and keep the difference, cut just after the end-of-turn token so tokenisation
restarts after a special token and does not depend on the preceding text).

Images: the processor turns each image into a block of `<|image_pad|>` tokens whose length depends
on the image's size, and into rows of `pixel_values`. Both are kept per image, in dialog order, so
a batch can be assembled from any episodes and a training forward sees the same features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mmsearch_gym.envs.types import Observation
from mmsearch_gym.hf.messages import message_parts, to_hf_messages
from mmsearch_gym.hf.processor import chat_template_of

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

_MARK = "\u2063MMSEARCH-GYM-ASSISTANT\u2063"  # a string no template or tokenizer rewrites


@dataclass
class Rendered:
    """Token ids of a dialog piece and the images whose placeholders it holds, in order."""

    ids: list[int]
    images: list[Image.Image] = field(default_factory=list)
    pixel_values: list[torch.Tensor] = field(default_factory=list)
    """One tensor of patch rows per image."""
    image_grid_thw: list[torch.Tensor] = field(default_factory=list)
    """One (1, 3) tensor per image."""


class DialogTokenizer:
    """Renders env observations into token ids with a Qwen-style VLM processor (chat template with an
    end-of-turn special token and `<|image_pad|>`-style image placeholders).

    Args:
        processor: an HF processor with `tokenizer`, `image_processor` and a chat template.
        chat_template_kwargs: extra keyword arguments for `apply_chat_template`.
    """

    def __init__(self, processor: Any, chat_template_kwargs: Mapping[str, Any] | None = None) -> None:
        self.processor = processor
        self.tokenizer: Any = getattr(processor, "tokenizer", None)
        if self.tokenizer is None or getattr(processor, "image_processor", None) is None:
            raise ValueError(f"{type(processor).__name__} is not a vision-language processor (it needs a tokenizer "
                             "and an image processor)")
        if chat_template_of(processor) is None:
            raise ValueError(f"{type(processor).__name__} has no chat template; the dialog cannot be rendered")
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        image_token = getattr(processor, "image_token", None) or "<|image_pad|>"
        self.image_token_id: int = self.tokenizer.convert_tokens_to_ids(image_token)
        if self.image_token_id is None or self.image_token_id == self.tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no image placeholder token {image_token!r}")
        self.merge_size: int = int(getattr(processor.image_processor, "merge_size", 2))
        self._base, self._prefix_end, self.end_of_turn = self._template_pieces()
        self.end_of_turn_ids: list[int] = self.tokenizer(self.end_of_turn, add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------------------------------ template

    def _template(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  **self.chat_template_kwargs)

    def _template_pieces(self) -> tuple[list[dict], int, str]:
        """(dummy dialog, offset just after its assistant turn's end-of-turn token, that token)."""
        base = [{"role": "user", "content": [{"type": "text", "text": "hello"}]},
                {"role": "assistant", "content": [{"type": "text", "text": _MARK}]}]
        rendered = self._template(base, add_generation_prompt=False)
        position = rendered.find(_MARK)
        if position < 0:
            raise ValueError("the chat template does not render assistant message content verbatim")
        after = rendered[position + len(_MARK):]
        eos = self.tokenizer.eos_token
        if not eos or not after.startswith(eos):
            raise ValueError(f"the chat template ends an assistant turn with {after[:40]!r}, not with the tokenizer's "
                             f"eos token {eos!r}; only templates whose turns end in the eos token are supported")
        return base, position + len(_MARK) + len(eos), eos

    # -------------------------------------------------------------------------------------- images

    def image_features(self, images: Sequence[Image.Image]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per-image pixel rows and grids, as the processor computes them (images are independent)."""
        if not images:
            return [], []
        features = self.processor.image_processor(images=list(images), return_tensors="pt")
        grids = features["image_grid_thw"]
        rows = grids.prod(dim=-1).tolist()
        pixel_values = list(features["pixel_values"].split(rows, dim=0))
        return pixel_values, [grid.view(1, 3) for grid in grids]

    def _encode(self, text: str, images: list[Image.Image]) -> Rendered:
        encoded = self.processor(text=[text], images=images or None, add_special_tokens=False, return_tensors="pt")
        ids = encoded["input_ids"][0].tolist()
        pixel_values, grids = [], []
        if images:
            rows = encoded["image_grid_thw"].prod(dim=-1).tolist()
            pixel_values = list(encoded["pixel_values"].split(rows, dim=0))
            grids = [grid.view(1, 3) for grid in encoded["image_grid_thw"]]
        rendered = Rendered(ids, list(images), pixel_values, grids)
        self.check_image_tokens(rendered.ids, rendered.image_grid_thw)
        return rendered

    def image_tokens_for(self, grids: Sequence[torch.Tensor]) -> int:
        """How many placeholder tokens the images with these grids take."""
        return int(sum(int(grid.prod()) for grid in grids)) // (self.merge_size ** 2)

    def check_image_tokens(self, ids: Sequence[int], grids: Sequence[torch.Tensor]) -> None:
        """Raise when the placeholder count differs from the image features (a model would then either
        crash or, inside TRL, silently drop every image of the batch)."""
        tokens = sum(1 for token in ids if token == self.image_token_id)
        expected = self.image_tokens_for(grids)
        if tokens != expected:
            raise ValueError(f"{tokens} image placeholder tokens but {len(grids)} image(s) with {expected} features")

    # ------------------------------------------------------------------------------------- dialogs

    def prompt(self, obs: Observation) -> Rendered:
        """The observation's whole dialog, ending with the assistant generation prompt."""
        messages, images = to_hf_messages(obs)
        return self._encode(self._template(messages, add_generation_prompt=True), images)

    def user_suffix(self, obs: Observation, message_index: int = -1) -> Rendered:
        """Ids that follow an assistant turn's end-of-turn token to append the observation's message
        `message_index` (a user turn) and the next assistant generation prompt."""
        messages = obs["messages"]
        message = messages[message_index]
        if message.get("role") == "assistant":
            raise ValueError("user_suffix renders user/tool turns; assistant turns are the policy's own tokens")
        converted, images = to_hf_messages({"images": obs["images"], "messages": [message]})
        full = self._template(self._base + converted, add_generation_prompt=True)
        prefix = self._template(self._base, add_generation_prompt=False)[: self._prefix_end]
        if not full.startswith(prefix):
            raise ValueError("the chat template is not prefix-preserving: appending a message changed earlier text")
        return self._encode(full[self._prefix_end:], images)

    def assistant_ids(self, text: str) -> list[int]:
        """The ids of an assistant turn's text as the policy would write it (SFT targets)."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def trajectory(self, obs: Observation) -> tuple[Rendered, Rendered, list[int]]:
        """(prompt, completion, loss mask) of a finished episode's observation, built the way the
        rollout builds it: the dialog up to the first assistant turn is the prompt; each assistant turn
        is its text's ids (mask 1) plus the end-of-turn token (mask 0); each later user turn is its
        suffix (mask 0). Used for SFT on recorded trajectories."""
        messages = list(obs["messages"])
        first = next((i for i, message in enumerate(messages) if message.get("role") == "assistant"), None)
        if first is None:
            raise ValueError("the observation holds no assistant turn to train on")
        prompt = self.prompt({"images": obs["images"], "messages": tuple(messages[:first])})
        completion = Rendered([])
        mask: list[int] = []
        for index in range(first, len(messages)):
            message = messages[index]
            if message.get("role") == "assistant":
                _, parts = message_parts(message, index)
                text = "".join(part["text"] for part in parts if part["type"] == "text")
                ids = self.assistant_ids(text)
                completion.ids += ids + self.end_of_turn_ids
                mask += [1] * len(ids) + [0] * len(self.end_of_turn_ids)
            else:
                suffix = self.user_suffix(obs, index)
                completion.ids += suffix.ids
                completion.images += suffix.images
                completion.pixel_values += suffix.pixel_values
                completion.image_grid_thw += suffix.image_grid_thw
                mask += [0] * len(suffix.ids)
        return prompt, completion, mask
