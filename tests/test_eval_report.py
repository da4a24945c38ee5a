"""`summary.png` and the comparison table: readable category names, a legend that covers nothing, and
the accuracy-vs-search-ratio panel."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from rich.console import Console  # noqa: E402

from mmsearch_gym.benchmarks.report import comparison_table, plot_summary, summary_figure  # noqa: E402


def _metrics(accuracy: float, search_ratio: float, by_needs: dict[str, tuple[float, float]]) -> dict:
    return {"accuracy": accuracy, "search_ratio": search_ratio, "searches_per_episode": 2 * search_ratio,
            "format_rate": 1.0, "mean_reward": accuracy, "tool_errors": 0, "agent_errors": 0, "by_category": {},
            "by_needs": {name: {"accuracy": a, "search_ratio": s} for name, (a, s) in by_needs.items()}}


RESULTS = {
    "no-search": _metrics(0.07, 0.0, {"none": (0.35, 0.0), "image": (0.0, 0.0), "image+text": (0.0, 0.0)}),
    "rag": _metrics(0.523, 1.0, {"none": (0.0, 1.0), "image": (1.0, 1.0), "image+text": (0.447, 1.0)}),
    "oracle": _metrics(1.0, 0.8, {"none": (1.0, 0.0), "image": (1.0, 1.0), "image+text": (1.0, 1.0)}),
}
LABELS = ["answerable from pixels", "needs image search", "needs image + text search"]


@pytest.fixture()
def figure():
    import matplotlib.pyplot as plt

    figure = summary_figure(RESULTS)
    figure.canvas.draw()
    yield figure
    plt.close(figure)


def test_the_legend_covers_no_panel(figure):
    (legend,) = figure.legends
    legend_box = legend.get_window_extent()
    assert [text.get_text() for text in legend.get_texts()] == list(RESULTS)
    for axis in figure.axes:
        assert not legend_box.overlaps(axis.get_window_extent()), axis.get_title()
    assert all(not axis.get_legend() for axis in figure.axes)  # no legend drawn inside a panel


def test_categories_are_labelled_readably_in_a_fixed_order(figure):
    for axis in figure.axes[:2]:
        assert [tick.get_text().replace("\n", " ") for tick in axis.get_xticklabels()] == LABELS


def test_the_trade_off_panel_plots_each_agents_accuracy_against_its_search_ratio(figure):
    trade_off = figure.axes[2]
    assert "accuracy vs search ratio" in trade_off.get_title()
    points = [tuple(collection.get_offsets()[0]) for collection in trade_off.collections]
    assert points == [(m["search_ratio"], m["accuracy"]) for m in RESULTS.values()]
    assert [text.get_text() for text in trade_off.texts] == list(RESULTS)


def test_the_png_is_byte_identical_across_runs(tmp_path):
    first = plot_summary(RESULTS, tmp_path / "a.png").read_bytes()
    assert first[:8] == b"\x89PNG\r\n\x1a\n" and plot_summary(RESULTS, tmp_path / "b.png").read_bytes() == first


def test_the_table_names_categories_like_the_plot():
    console = Console(width=200, record=True)
    console.print(comparison_table(RESULTS))
    text = console.export_text()
    for label in LABELS:
        assert f"{label}: accuracy %" in text and f"{label}: search %" in text
    assert text.index(LABELS[0]) < text.index(LABELS[1]) < text.index(LABELS[2])
