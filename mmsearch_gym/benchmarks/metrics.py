"""Run metrics from episode records: accuracy, search behaviour, format, errors, cache use.

Everything is computed from the records alone, so anyone holding a run directory can re-derive the
numbers; floats are rounded so that equal runs give byte-identical `metrics.json`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Sequence

DIGITS = 6


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), DIGITS) if values else 0.0


def _group_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "episodes": len(records),
        "accuracy": _mean([r["score"] for r in records]),
        "search_ratio": _mean([float(r["searches"] > 0) for r in records]),
        "mean_reward": _mean([r["reward"] for r in records]),
    }


def _split(records: Iterable[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[str(record.get(key) or "uncategorised")].append(record)
    return {name: _group_metrics(groups[name]) for name in sorted(groups)}


def compute_metrics(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    searches = sum(r["searches"] for r in records)
    hits = sum(r["cache_hits"] for r in records)
    metrics: dict[str, Any] = {
        **_group_metrics(records),
        "format_rate": _mean([float(r["format_score"]) for r in records]),
        "searches_per_episode": _mean([float(r["searches"]) for r in records]),
        "image_searches": sum(r["image_searches"] for r in records),
        "text_searches": sum(r["text_searches"] for r in records),
        "tool_errors": sum(r["tool_errors"] for r in records),
        "agent_errors": sum(1 for r in records if r.get("error")),
        "cache_hits": hits,
        "cache_misses": sum(r["cache_misses"] for r in records),
        "cache_hit_rate": round(hits / searches, DIGITS) if searches else 0.0,
        "by_category": _split(records, "category"),
    }
    if any(r.get("needs") for r in records):
        metrics["by_needs"] = _split(records, "needs")
    return metrics
