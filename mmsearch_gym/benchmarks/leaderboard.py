"""A static leaderboard site from a directory of submission packages.

Why static: the page is a build artefact anyone can host or open from disk; it loads nothing from the
network (inline CSS, JS and SVG; a Content-Security-Policy forbids any fetch), so it is as offline
and reproducible as the runs behind it. Only packages that `validate_submission` accepts become rows,
and their numbers are the re-played metrics, not the submitted ones; rejected packages are listed with
their reasons. Reference baselines (e.g. our scripted agents) are rows marked as such.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Mapping, Sequence

from mmsearch_gym.benchmarks.pinned import PinnedSuite
from mmsearch_gym.benchmarks.submission import DEFAULT_LIMITS, SubmissionLimits
from mmsearch_gym.benchmarks.validate import SpecResolver, ValidationReport, validate_submission
from mmsearch_gym.runs import encode_json, write_files_atomic

DEFAULT_PRICE_PER_1K = 15.0
"""US$ per 1000 search calls: SerpApi's list price, about $75 per 5k calls (DESIGN, intro)."""
PAGE_FILE = "index.html"
DATA_FILE = "data.json"
_REQUIRED_METRICS = ("episodes", "accuracy", "search_ratio", "searches_per_episode", "image_searches",
                     "text_searches")
_MAX_REASONS_SHOWN = 20


@dataclass(frozen=True)
class LeaderboardRow:
    """One table row: a validated submission or a reference baseline."""

    agent: str
    model: str
    size: str
    reference: bool
    submission: str | None
    episodes: int
    accuracy: float
    search_ratio: float
    searches_per_episode: float
    searches: int
    search_cost_usd: float
    by_category: dict[str, float] = field(default_factory=dict)


@dataclass
class Leaderboard:
    """What `build_leaderboard` produced: rows (accuracy descending), rejected packages, written files."""

    rows: list[LeaderboardRow]
    rejected: list[tuple[str, list[str]]]
    categories: list[str]
    price_per_1k: float
    page: Path
    data: Path

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [asdict(row) for row in self.rows], "categories": self.categories,
                "price_per_1k_calls_usd": self.price_per_1k,
                "rejected": [{"submission": name, "reasons": reasons} for name, reasons in self.rejected]}


def _checked_metrics(name: str, metrics: Any) -> Mapping[str, Any]:
    if not isinstance(metrics, Mapping):
        raise ValueError(f"baseline {name!r}: metrics must be a mapping (a metrics.json), got {type(metrics).__name__}")
    for key in _REQUIRED_METRICS:
        value = metrics.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"baseline {name!r}: metrics field {key!r} must be a number >= 0, got {value!r}")
    return metrics


def _row(agent: str, model: str, size: str, metrics: Mapping[str, Any], price_per_1k: float, *,
         reference: bool, submission: str | None) -> LeaderboardRow:
    searches = int(metrics["image_searches"]) + int(metrics["text_searches"])
    by_category = metrics.get("by_category") or {}
    return LeaderboardRow(
        agent=agent, model=model, size=size, reference=reference, submission=submission,
        episodes=int(metrics["episodes"]), accuracy=float(metrics["accuracy"]),
        search_ratio=float(metrics["search_ratio"]), searches_per_episode=float(metrics["searches_per_episode"]),
        searches=searches, search_cost_usd=round(searches * price_per_1k / 1000, 6),
        by_category={str(name): float(group["accuracy"]) for name, group in sorted(by_category.items())
                     if isinstance(group, Mapping) and isinstance(group.get("accuracy"), (int, float))},
    )


def _submission_row(report: ValidationReport, price_per_1k: float) -> LeaderboardRow:
    card = report.agent_card or {}
    manifest_agent = (report.manifest or {}).get("agent") or {}
    agent = card.get("name") or (manifest_agent.get("name") if isinstance(manifest_agent, Mapping) else None)
    if report.metrics is None:  # accepted reports always carry re-played metrics
        raise ValueError(f"{report.path}: accepted without metrics")
    return _row(str(agent or Path(report.path).stem), str(card["model"]), str(card["size"]), report.metrics,
                price_per_1k, reference=False, submission=Path(report.path).name)


# -- rendering --------------------------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _esc(value: Any) -> str:
    """HTML-escaped text; a lone surrogate (not Unicode, so not writable as UTF-8) becomes U+FFFD."""
    return html.escape(_SURROGATE.sub("\ufffd", str(value)), quote=True)


def _columns(categories: Sequence[str]) -> list[tuple[str, str, str]]:
    """(key, header label, type) of every table column."""
    return ([("agent", "Agent", "text"), ("model", "Model", "text"), ("accuracy", "Accuracy", "number")]
            + [(f"category:{name}", f"Accuracy: {name.replace('_', ' ')}", "number") for name in categories]
            + [("search_ratio", "Search ratio", "number"), ("searches_per_episode", "Searches / episode", "number"),
               ("search_cost_usd", "Est. search cost", "number")])


def _cell(row: LeaderboardRow, key: str) -> tuple[str, str]:
    """(sort value, shown text) of one cell."""
    if key == "agent":
        badge = '<span class="badge">reference</span>' if row.reference else ""
        return row.agent, _esc(row.agent) + badge
    if key == "model":
        return row.model, _esc(row.model) + (f" <small>({_esc(row.size)})</small>" if row.size else "")
    if key.startswith("category:"):
        value = row.by_category.get(key.split(":", 1)[1])
        return ("", "—") if value is None else (repr(value), f"{value:.1%}")
    value = getattr(row, key)
    if key == "search_cost_usd":
        return repr(value), (f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.3f}")
    if key == "searches_per_episode":
        return repr(value), f"{value:.2f}"
    return repr(value), f"{value:.1%}"


def render_table(rows: Sequence[LeaderboardRow], categories: Sequence[str]) -> str:
    """The results table, rows in the given order, accuracy marked as the current sort."""
    columns = _columns(categories)
    head = "".join(
        f'<th scope="col" data-key="{_esc(key)}" data-type="{kind}" '
        f'aria-sort="{"descending" if key == "accuracy" else "none"}"><button type="button">{_esc(label)}</button></th>'
        for key, label, kind in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, _ in columns:
            value, shown = _cell(row, key)
            cells.append(f'<td data-value="{_esc(value)}">{shown}</td>')
        css = ' class="reference"' if row.reference else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table id="leaderboard"><thead><tr>{head}</tr></thead>\n<tbody>\n'
            + "\n".join(body)
            + "\n</tbody></table></div>")


def render_scatter(rows: Sequence[LeaderboardRow], width: int = 640, height: int = 400) -> str:
    """Accuracy (y) against search ratio (x) as inline SVG; reference rows are hollow points."""
    left, right, top, bottom = 56, 24, 16, 48
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(value: float) -> float:
        return round(left + min(max(value, 0.0), 1.0) * plot_w, 2)

    def y(value: float) -> float:
        return round(top + (1.0 - min(max(value, 0.0), 1.0)) * plot_h, 2)

    parts = [f'<svg id="scatter" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="Accuracy against search ratio">']
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line class="grid" x1="{x(tick)}" y1="{y(0)}" x2="{x(tick)}" y2="{y(1)}"/>'
                     f'<line class="grid" x1="{x(0)}" y1="{y(tick)}" x2="{x(1)}" y2="{y(tick)}"/>'
                     f'<text x="{x(tick)}" y="{y(0) + 18}" text-anchor="middle">{tick:.0%}</text>'
                     f'<text x="{x(0) - 8}" y="{y(tick) + 4}" text-anchor="end">{tick:.0%}</text>')
    parts.append(f'<line class="axis" x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(0)}"/>'
                 f'<line class="axis" x1="{x(0)}" y1="{y(0)}" x2="{x(0)}" y2="{y(1)}"/>'
                 f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">search ratio</text>'
                 f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2})">accuracy</text>')
    for row in rows:
        css = "point reference" if row.reference else "point"
        tip = f"{row.agent}: accuracy {row.accuracy:.1%}, search ratio {row.search_ratio:.1%}"
        right_side = row.search_ratio > 0.7  # label to the left of points near the right edge
        label_x = x(row.search_ratio) + (-9 if right_side else 9)
        parts.append(f'<g data-agent="{_esc(row.agent)}"><circle class="{css}" cx="{x(row.search_ratio)}" '
                     f'cy="{y(row.accuracy)}" r="6"><title>{_esc(tip)}</title></circle>'
                     f'<text x="{label_x}" y="{y(row.accuracy) - 7}" text-anchor="{"end" if right_side else "start"}">'
                     f'{_esc(row.agent)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def render_rejected(rejected: Sequence[tuple[str, Sequence[str]]]) -> str:
    if not rejected:
        return "<p>None.</p>"
    items = []
    for name, reasons in rejected:
        shown = [f"<li>{_esc(reason)}</li>" for reason in reasons[:_MAX_REASONS_SHOWN]]
        if len(reasons) > _MAX_REASONS_SHOWN:
            shown.append(f"<li>… {len(reasons) - _MAX_REASONS_SHOWN} more</li>")
        items.append(f'<li data-submission="{_esc(name)}"><code>{_esc(name)}</code><ul>{"".join(shown)}</ul></li>')
    return "<ul>" + "\n".join(items) + "</ul>"


def _inline_json(value: Any) -> str:
    """JSON safe inside a <script> element (no '</script>' or HTML-significant characters)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_page(board: Leaderboard, *, title: str, pins: str) -> str:
    template = Template(resources.files("mmsearch_gym.benchmarks").joinpath("templates/leaderboard.html")
                        .read_text(encoding="utf-8"))
    note = (f"Estimated search cost: searches made over the whole run × ${board.price_per_1k:,.2f} per 1,000 "
            "search calls. Click a column header to sort by it; click again to reverse. Reference rows are "
            "built-in baselines.")
    return template.substitute(
        title=_esc(title), pins=pins, table=render_table(board.rows, board.categories), note=_esc(note),
        chart=render_scatter(board.rows), rejected=render_rejected(board.rejected),
        data=_inline_json(board.to_dict()))


def _pins_line(suite: PinnedSuite | SpecResolver) -> str:
    if not isinstance(suite, PinnedSuite):
        return "Every submission was re-played against its pinned suite and search cache."
    return (f"Suite <code>{_esc(suite.spec.suite_name)}</code> ({len(suite.samples)} samples), suite hash "
            f"<code>{_esc(suite.suite_hash)}</code>, cache bundle hash <code>{_esc(suite.cache_bundle_hash)}</code>. "
            "Every submission was re-played against them.")


def _write_site(files: Sequence[tuple[Path, bytes]]) -> None:
    """Stage every file, then move them all into place: a failure while writing leaves the previous
    site as it was and no temporary file behind."""
    write_files_atomic(files, mode=0o644)


# -- building ---------------------------------------------------------------------------------------------

def build_leaderboard(submissions_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                      baselines: Mapping[str, Mapping[str, Any]] | None = None, *,
                      suite: PinnedSuite | SpecResolver, price_per_1k: float = DEFAULT_PRICE_PER_1K,
                      title: str = "mmsearch-gym leaderboard",
                      limits: SubmissionLimits = DEFAULT_LIMITS) -> Leaderboard:
    """Validate every `*.zip` in `submissions_dir` against `suite` and write `index.html` and
    `data.json` to `out_dir`. `baselines` maps a name to a metrics dict (a run's metrics.json), shown
    as reference rows. `price_per_1k` is the assumed US$ price of 1000 search calls."""
    folder = Path(submissions_dir)
    if not folder.is_dir():
        raise ValueError(f"submissions directory {str(folder)!r} does not exist or is not a directory")
    if isinstance(price_per_1k, bool) or not isinstance(price_per_1k, (int, float)) \
            or not math.isfinite(price_per_1k) or price_per_1k < 0:
        raise ValueError(f"price_per_1k must be a finite number >= 0 (US$ per 1000 search calls), got {price_per_1k!r}")
    references = [_row(name, "—", "", _checked_metrics(name, metrics), price_per_1k, reference=True, submission=None)
                  for name, metrics in sorted((baselines or {}).items())]
    rows, rejected = list(references), []
    for package in sorted(folder.glob("*.zip")):
        report = validate_submission(package, suite, limits=limits)
        if report.accepted:
            rows.append(_submission_row(report, price_per_1k))
        else:
            rejected.append((package.name, report.reasons))
    rows.sort(key=lambda row: (-row.accuracy, row.agent, row.submission or ""))
    categories = sorted({name for row in rows for name in row.by_category})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    board = Leaderboard(rows, rejected, categories, float(price_per_1k), out / PAGE_FILE, out / DATA_FILE)
    data = encode_json(board.to_dict())  # both files are rendered before either is touched
    page = render_page(board, title=title, pins=_pins_line(suite)).encode("utf-8")
    _write_site(((board.data, data), (board.page, page)))
    return board


__all__ = ["DEFAULT_PRICE_PER_1K", "Leaderboard", "LeaderboardRow", "build_leaderboard", "render_page",
           "render_scatter", "render_table"]
