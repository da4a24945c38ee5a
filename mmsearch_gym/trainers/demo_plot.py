"""The demo's learning curves: reward, accuracy, search ratio per category and format rate against
GRPO step, from the rollouts' `curves.jsonl` (`demo_train.CurveRolloutFunc`).

Each panel shows the per-step values (thin) and a moving average (thick), because one step's group
of rollouts is a small, noisy sample. The evaluated SFT and GRPO test accuracies are drawn as
horizontal reference lines when known. matplotlib is imported inside (Agg backend: no display).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PANELS: tuple[tuple[str, Sequence[tuple[str, str]]], ...] = (
    ("reward (train rollouts)", (("reward", "mean reward"),)),
    ("accuracy (train rollouts)", (("accuracy", "all"), ("accuracy/search_free", "answerable from pixels"),
                                   ("accuracy/search_required", "needs search"))),
    ("search ratio per category", (("search_ratio/search_free", "answerable from pixels"),
                                   ("search_ratio/search_required", "needs search"))),
    ("format rate", (("format_rate", "well formed"),)),
)


def read_curves(path: str | Path) -> list[dict[str, Any]]:
    file = Path(path)
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def moving_average(values: Sequence[float | None], window: int) -> list[float | None]:
    """Trailing mean over the last `window` known values (None where nothing is known yet)."""
    out: list[float | None] = []
    seen: list[float] = []
    for value in values:
        if value is not None:
            seen.append(value)
        recent = seen[-window:]
        out.append(sum(recent) / len(recent) if recent else None)
    return out


def plot_learning_curves(curves_path: str | Path, out_path: str | Path,
                         results: Mapping[str, Any] | None = None) -> Path:
    """Write the four-panel PNG; an empty curves file gives empty panels (never an error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_curves(curves_path)
    steps = [row["step"] + 1 for row in rows]
    window = max(1, len(rows) // 10)
    figure, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    for axis, (title, series) in zip(axes, PANELS):
        for index, (key, label) in enumerate(series):
            values = [row.get(key) for row in rows]
            colour = f"C{index}"
            known = [(s, v) for s, v in zip(steps, values) if v is not None]
            if known:
                axis.plot([s for s, _ in known], [v for _, v in known], color=colour, alpha=0.25, linewidth=0.8)
            smooth = [(s, v) for s, v in zip(steps, moving_average(values, window)) if v is not None]
            if smooth:
                axis.plot([s for s, _ in smooth], [v for _, v in smooth], color=colour, linewidth=2, label=label)
        if title.startswith("accuracy") and results:
            for stage, style in (("sft", ":"), ("grpo", "--")):
                value = (results.get(stage) or {}).get("accuracy")
                if isinstance(value, (int, float)):
                    axis.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"{stage} test accuracy")
        axis.set_title(title)
        axis.set_xlabel("GRPO step")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
    seed = (results or {}).get("seed")
    figure.suptitle("Learning to search: SFT on over-searching demonstrations, then GRPO"
                    + (f" (seed {seed})" if seed is not None else ""))
    figure.tight_layout()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
