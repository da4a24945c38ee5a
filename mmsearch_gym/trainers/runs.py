"""Run-directory plumbing shared by the GRPO and SFT commands: resumption, precision, run config, and
the run loop itself (`run_training`).

Why explicit resume modes: silently starting over in a directory that holds checkpoints would mix
two runs' metrics and overwrite checkpoints, and silently resuming a different run is as bad; so
"auto" resumes when a checkpoint exists, true requires one and false refuses to touch a directory
that has them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from mmsearch_gym.trainers.config import ConfigError, TrainingCommon, to_plain

RUN_CONFIG_FILE = "train_config.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def last_checkpoint(output_dir: str | Path) -> Path | None:
    """The `checkpoint-N` folder with the largest N that holds a trainer state, or None."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [(int(match.group(1)), path) for path in folder.iterdir()
             if path.is_dir() and (match := _CHECKPOINT.match(path.name)) and (path / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def resolve_resume(output_dir: str | Path, resume: Union[bool, str]) -> str | None:
    """The checkpoint to resume from under `resume` ("auto", True or False), or None to start fresh."""
    checkpoint = last_checkpoint(output_dir)
    if resume == "auto":
        return str(checkpoint) if checkpoint else None
    if resume is True:
        if checkpoint is None:
            raise ConfigError(f"resume: true but {str(output_dir)!r} holds no checkpoint-N folder")
        return str(checkpoint)
    if resume is False:
        if checkpoint is not None:
            raise ConfigError(f"resume: false but {str(output_dir)!r} already holds {checkpoint.name}; use "
                              "resume: auto to continue it, or another output_dir")
        return None
    raise ConfigError(f"resume must be 'auto', true or false, got {resume!r}")


def resolve_precision(device: str, bf16: bool | None) -> tuple[bool, bool]:
    """(use_cpu, bf16) for a device choice: bf16 only on CUDA (and by default where supported)."""
    import torch

    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise ConfigError(f"device: cuda but CUDA is not available (torch {torch.__version__})")
    use_cpu = device == "cpu" or not cuda
    if bf16 is None:
        bf16 = not use_cpu and torch.cuda.is_bf16_supported()
    if bf16 and use_cpu:
        raise ConfigError("bf16: true needs a CUDA device; on CPU train in float32 (bf16: false or null)")
    return use_cpu, bool(bf16)


def write_run_config(output_dir: str | Path, kind: str, config: dict[str, Any]) -> Path:
    """Record what was run (the full config, with defaults filled in) next to the checkpoints."""
    import mmsearch_gym

    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / RUN_CONFIG_FILE
    path.write_text(json.dumps({"kind": kind, "package_version": mmsearch_gym.__version__, "config": config},
                               indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path


def checkpoint_step(checkpoint: str | Path | None) -> int | None:
    """The global step a checkpoint folder was saved at (None for no checkpoint)."""
    if checkpoint is None:
        return None
    state = Path(checkpoint) / "trainer_state.json"
    return int(json.loads(state.read_text(encoding="utf-8"))["global_step"]) if state.is_file() else None


def model_and_args(config: TrainingCommon, make_args: Callable[[Any, bool, bool], Any]) -> tuple[Path, Any]:
    """(local model folder, TRL training arguments) of a run config: `make_args(config, use_cpu, bf16)`
    builds the arguments once the precision is resolved; a bf16 run also loads its model in bf16."""
    from mmsearch_gym.hf import local_model_dir

    model_dir = local_model_dir(config.model)
    use_cpu, bf16 = resolve_precision(config.device, config.bf16)
    args = make_args(config, use_cpu, bf16)
    if bf16:
        args.model_init_kwargs = {**(args.model_init_kwargs or {}), "dtype": "bfloat16"}
    return model_dir, args


def run_training(config: TrainingCommon, kind: str, aliases: Mapping[str, str],
                 build: Callable[[Sequence[Any]], Any], on_trainer: Callable[[Any], None] | None = None) -> Path:
    """The run loop GRPO and SFT share: resolve the checkpoint to resume, build the trainer with the
    metrics logger and the final-checkpoint callback (`build(callbacks)`), record the config, train,
    save the final model. Returns the output directory."""
    from mmsearch_gym.trainers.checkpoints import save_final_checkpoint_callback
    from mmsearch_gym.trainers.metrics_log import MetricsLogger

    output_dir = Path(config.output_dir)
    checkpoint = resolve_resume(output_dir, config.resume)
    logger = MetricsLogger(output_dir / config.metrics_file, aliases=aliases, resume_step=checkpoint_step(checkpoint))
    trainer = build([logger, save_final_checkpoint_callback()])
    if trainer.accelerator.is_main_process:
        write_run_config(output_dir, kind, to_plain(config))
    if on_trainer is not None:
        on_trainer(trainer)
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(output_dir))
    return output_dir
