"""Resuming from a checkpoint with the model's own weight-name conversion.

Why: transformers 5.x saves some models (Qwen2.5-VL among them) under their original checkpoint
names (`visual.*`, `model.layers.*`) while the module tree names them differently
(`model.visual.*`, `model.language_model.layers.*`); `from_pretrained` converts, but
`Trainer._load_from_checkpoint` (5.23) calls `load_state_dict(strict=False)` on the raw file, so a
resumed run silently keeps its initial weights (only a warning lists the "unexpected keys"). This
mixin loads the checkpoint through `from_pretrained` and copies the converted weights strictly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")


def load_checkpoint_weights(model: Any, checkpoint: str | Path) -> None:
    """Copy a `save_pretrained` folder's weights into `model` (names converted), strictly."""
    import torch

    dtype = next(model.parameters()).dtype
    loaded = type(model).from_pretrained(str(checkpoint), dtype=dtype, device_map=None)
    state = loaded.state_dict()
    with torch.no_grad():
        result = model.load_state_dict(state, strict=False)
    del loaded, state
    if result.missing_keys or result.unexpected_keys:
        raise RuntimeError(f"checkpoint {str(checkpoint)!r} does not fit the model: missing {result.missing_keys[:5]}, "
                           f"unexpected {result.unexpected_keys[:5]}")


class ConvertedCheckpointMixin:
    """For `transformers.Trainer` subclasses: resume model weights through `from_pretrained`."""

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from accelerate.utils import is_peft_model

        target = self.model if model is None else model  # type: ignore[attr-defined]
        folder = Path(resume_from_checkpoint)
        plain = (not getattr(self, "is_fsdp_enabled", False) and not is_peft_model(target)
                 and any((folder / name).is_file() for name in _WEIGHT_FILES))
        if not plain:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
        load_checkpoint_weights(target, folder)
        return None


def save_final_checkpoint_callback() -> Any:
    """A TrainerCallback that also checkpoints the last step, so a finished run can be extended
    (raise max_steps and run again) without redoing the steps after the last periodic checkpoint."""
    from transformers import TrainerCallback

    class SaveFinalCheckpoint(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.max_steps > 0 and state.global_step >= state.max_steps:
                control.should_save = True
            return control

    return SaveFinalCheckpoint()
