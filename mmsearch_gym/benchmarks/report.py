"""Comparing agents: a terminal table and `summary.png` (accuracy and search ratio per category, and
accuracy against search ratio)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table


# Readable names of the metrics' category keys: `by_needs` (synthetic suites: what a question needs)
# and `by_category` (FVQA's categories), in the order they are shown.
CATEGORY_LABELS = {
    "none": "answerable from pixels",
    "image": "needs image search",
    "image+text": "needs image + text search",
    "search_free": "answerable from pixels",
    "search_required": "needs search",
    "uncategorised": "uncategorised",
}


def category_label(group: str) -> str:
    """The readable name of a metrics category key (unknown keys are shown as they are)."""
    return CATEGORY_LABELS.get(group, group)


def _ordered_groups(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    order = list(CATEGORY_LABELS)
    names = {name for metrics in results.values() for name in _groups(metrics)}
    return sorted(names, key=lambda name: (order.index(name) if name in order else len(order), name))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def comparison_table(results: Mapping[str, Mapping[str, Any]], title: str = "mmsearch-gym evaluation") -> Table:
    """One column per agent, one row per figure: overall accuracy, search ratio, searches per episode,
    format rate, reward, then accuracy and search ratio per category (synthetic suites split
    search-required questions by what they need: image, or image + text), then errors."""
    groups = _ordered_groups(results)
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
        rows.append((f"  {category_label(group)}: accuracy %", lambda m, g=group: _cell(m, g, "accuracy")))
        rows.append((f"  {category_label(group)}: search %", lambda m, g=group: _cell(m, g, "search_ratio")))
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


def summary_figure(results: Mapping[str, Mapping[str, Any]]) -> Any:
    """The `summary.png` figure (a matplotlib Figure): accuracy and search ratio per category (grouped
    bars, one colour per agent, the value above each bar), and overall accuracy against search ratio
    (the paper's trade-off, drawn as the leaderboard page draws it). The legend sits below the
    panels, so it covers no bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    groups = _ordered_groups(results)
    agents = list(results)
    colours = [f"C{position % 10}" for position in range(len(agents))]
    width = 0.8 / max(1, len(agents))
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": (1.25, 1.25, 1)})
    for axis, key, label in ((axes[0], "accuracy", "accuracy"), (axes[1], "search_ratio", "search ratio")):
        for position, agent in enumerate(agents):
            values = [_groups(results[agent]).get(group, {}).get(key, 0.0) for group in groups]
            xs = [g + position * width - 0.4 + width / 2 for g in range(len(groups))]
            bars = axis.bar(xs, values, width=width, label=agent, color=colours[position])
            axis.bar_label(bars, labels=[f"{100 * v:.0f}%" for v in values], fontsize=7, padding=1)
        axis.set_xticks(range(len(groups)), [textwrap.fill(category_label(g), 16) for g in groups])
        axis.set_ylim(0, 1.1)
        axis.yaxis.set_major_formatter(PercentFormatter(1.0))
        axis.set_ylabel(label)
        axis.set_title(f"{label} per category")
        axis.grid(axis="y", alpha=0.3)
    _plot_trade_off(axes[2], results, colours)
    axes[2].xaxis.set_major_formatter(PercentFormatter(1.0))
    axes[2].yaxis.set_major_formatter(PercentFormatter(1.0))
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=max(1, len(agents)), frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return figure


def plot_summary(results: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Write `summary_figure(results)` to `path` (PNG, no timestamp metadata); returns the path."""
    import matplotlib.pyplot as plt

    figure = summary_figure(results)
    path = Path(path)
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
    return path


def _plot_trade_off(axis: Any, results: Mapping[str, Mapping[str, Any]], colours: list[str]) -> None:
    """Overall accuracy (y) against search ratio (x), one labelled point per agent: up and to the
    left is better (more correct answers with fewer searching episodes)."""
    for (agent, metrics), colour in zip(results.items(), colours):
        x, y = float(metrics["search_ratio"]), float(metrics["accuracy"])
        axis.scatter([x], [y], s=60, color=colour, zorder=3)
        right_side = x > 0.7  # label to the left of points near the right edge
        axis.annotate(agent, (x, y), xytext=(-8 if right_side else 8, -4), textcoords="offset points",
                      ha="right" if right_side else "left", fontsize=9)
    axis.set_xlim(-0.05, 1.05)
    axis.set_ylim(-0.05, 1.1)
    axis.set_xlabel("search ratio (share of episodes that searched)")
    axis.set_ylabel("accuracy")
    axis.set_title("accuracy vs search ratio (up and left is better)")
    axis.grid(alpha=0.3)
