"""Per-step training metrics: one JSON object per line in `metrics.jsonl`, and one console line.

Why a file of our own: TRL's logs go to the console and optional trackers; a JSONL file in the run
directory makes every number of a run re-readable without any tracker, and the canonical names
(`reward`, `accuracy`, `search_ratio`, `format_rate`, `kl`, `response_length`) stay stable while
TRL's own keys (kept alongside) may change. On resumption the records past the checkpoint's step
are dropped first, so the file never holds two versions of a step.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

from transformers import TrainerCallback


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a metrics file (an empty list when it does not exist)."""
    file = Path(path)
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


class MetricsLogger(TrainerCallback):
    """A `TrainerCallback` that appends each training log to `path` and prints a short line.

    Args:
        path: the JSONL file.
        aliases: canonical name -> log key; each record gets the canonical names (None when absent).
        resume_step: when resuming, records with a larger step are removed first.
        echo: where console lines go (None: silent).
    """

    def __init__(self, path: str | Path, aliases: Mapping[str, str], resume_step: int | None = None,
                 echo: Callable[[str], None] | None = print) -> None:
        self.path = Path(path)
        self.aliases = dict(aliases)
        self.resume_step = resume_step
        self.echo = echo

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        records = read_metrics(self.path)
        keep = [r for r in records if self.resume_step is not None and r.get("step", 0) <= self.resume_step]
        if len(keep) != len(records):
            self.path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in keep), encoding="utf-8")

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if not any(key in logs for key in self.aliases.values()) and "loss" not in logs:
            return  # the end-of-training summary (train_runtime, ...): not a step
        record: dict[str, Any] = {"step": int(state.global_step)}
        for name, key in self.aliases.items():
            record[name] = _clean(logs.get(key))
        record["raw"] = {key: _clean(value) for key, value in logs.items()}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
        if self.echo is not None:
            shown = " | ".join(f"{name} {value:.4g}" if isinstance(value, (int, float)) else f"{name} -"
                               for name, value in record.items() if name != "raw")
            self.echo(shown)
