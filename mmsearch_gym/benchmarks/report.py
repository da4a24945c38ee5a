"""Comparing agents: a terminal table and `summary.png` (accuracy and search ratio per category)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def comparison_table(results: Mapping[str, Mapping[str, Any]], title: str = "mmsearch-gym evaluation") -> Table:
    """One column per agent, one row per figure: overall accuracy, search ratio, searches per episode,
    format rate, reward, then accuracy and search ratio per category (synthetic suites split
    search-required questions by what they need: image, or image + text), then errors."""
    groups = sorted({name for metrics in results.values() for name in _groups(metrics)})
    table = Table(title=title)
    table.add_column("", style="bold")
    for agent in results:
        table.add_column(agent, justify="right")
    rows: list[tuple[str, Any]] = [
        ("accuracy %", lambda m: _pct(m["accuracy"])),
        ("search ratio %", lambda m: _pct(m["search_ratio"])),
        ("searches / episode", lambda m: f"{m['searches_per_episode']:.2f}"),
        ("format %", lambda m: _pct(m["format_rate"])),
        ("mean reward", lambda m: f"{m['mean_reward']:.3f}"),
    ]
    for group in groups:
        rows.append((f"  {group}: accuracy %", lambda m, g=group: _cell(m, g, "accuracy")))
        rows.append((f"  {group}: search %", lambda m, g=group: _cell(m, g, "search_ratio")))
    rows.append(("tool / agent errors", lambda m: f"{m['tool_errors']} / {m['agent_errors']}"))
    for label, cell in rows:
        table.add_row(label, *(cell(metrics) for metrics in results.values()))
    return table


def _cell(metrics: Mapping[str, Any], group: str, key: str) -> str:
    values = _groups(metrics).get(group)
    return _pct(values[key]) if values else "-"


def _groups(metrics: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    return metrics.get("by_needs") or metrics["by_category"]


def print_table(results: Mapping[str, Mapping[str, Any]], console: Console | None = None) -> None:
    (console or Console()).print(comparison_table(results))


def plot_summary(results: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Grouped bars: accuracy (left) and search ratio (right) per category, one colour per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({name for metrics in results.values() for name in _groups(metrics)})
    agents = list(results)
    width = 0.8 / max(1, len(agents))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for axis, key, label in ((axes[0], "accuracy", "accuracy"), (axes[1], "search_ratio", "search ratio")):
        for position, agent in enumerate(agents):
            values = [_groups(results[agent]).get(group, {}).get(key, 0.0) for group in groups]
            xs = [g + position * width - 0.4 + width / 2 for g in range(len(groups))]
            axis.bar(xs, values, width=width, label=agent)
        axis.set_xticks(range(len(groups)), groups, rotation=15)
        axis.set_ylim(0, 1.05)
        axis.set_title(f"{label} per category")
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
    return path
