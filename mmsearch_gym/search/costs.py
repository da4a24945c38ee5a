"""Billable-request accounting for the live search backends.

Why: a training run makes one search per rollout turn, so a misconfigured loop can spend a month's
SerpApi budget in an hour. Every backend counts the requests it sends to a metered service, per
engine, and reports an estimate; runs can log it and stop early.

What is counted: every HTTP request *sent*, retries included (a 5xx or timeout may still have been
billed, and we cannot tell), so the count is an upper bound. SerpApi does not bill searches it
answers from its own cache (identical parameters within about an hour), so the real bill can be lower.
"""

from __future__ import annotations

import threading
from typing import Mapping

from mmsearch_gym.checks import require_int, require_number

SERPAPI_PREFIX = "serpapi/"
#: USD per 1,000 SerpApi searches (the ~$75 / 5,000 searches plan); override per meter.
DEFAULT_SERPAPI_PRICE_PER_1K_USD = 15.0


def _check_price(name: str, value: object) -> float:
    return require_number(f"price per 1k calls for {name!r}", value, low=0.0)


class UsageMeter:
    """Thread-safe counter of billable calls per engine with a cost estimate.

    Engines are named like ``serpapi/google_lens``, ``serpapi/google``, ``searxng``, ``jina_reader``,
    ``summarizer/<model>``. Prices: `prices_per_1k_usd` (exact engine names) first, then
    `serpapi_price_per_1k_usd` for any ``serpapi/*`` engine, else 0 (self-hosted services).
    One meter can be shared by several backends to total a run's spend.
    """

    def __init__(self, prices_per_1k_usd: Mapping[str, float] | None = None, *,
                 serpapi_price_per_1k_usd: float = DEFAULT_SERPAPI_PRICE_PER_1K_USD) -> None:
        self._prices = {str(k): _check_price(str(k), v) for k, v in (prices_per_1k_usd or {}).items()}
        self._serpapi_price = _check_price("serpapi/*", serpapi_price_per_1k_usd)
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"UsageMeter({self.calls()})"

    def price_per_1k_usd(self, engine: str) -> float:
        if engine in self._prices:
            return self._prices[engine]
        return self._serpapi_price if engine.startswith(SERPAPI_PREFIX) else 0.0

    def record(self, engine: str, n: int = 1) -> None:
        if not isinstance(engine, str) or not engine:
            raise ValueError(f"engine must be a non-empty string, got {engine!r}")
        n = require_int("n", n, low=0)
        with self._lock:
            self._calls[engine] = self._calls.get(engine, 0) + n

    def calls(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._calls.items()))

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    def usage(self) -> dict[str, object]:
        """``{"billable_calls": {engine: n}, "estimated_cost_usd": float, "price_per_1k_usd": {...}}``."""
        return usage_of(self)


def usage_of(*meters: UsageMeter | None) -> dict[str, object]:
    """Combined usage of several meters (each counted once, even if passed twice; None skipped): a text backend
    reports its own searches plus its reader's and summarizer's requests."""
    unique = list({id(m): m for m in meters if m is not None}.values())
    calls: dict[str, int] = {}
    cost = 0.0
    prices: dict[str, float] = {}
    for meter in unique:
        for engine, n in meter.calls().items():
            calls[engine] = calls.get(engine, 0) + n
            price = meter.price_per_1k_usd(engine)
            prices[engine] = price
            cost += n * price / 1000.0
    return {"billable_calls": dict(sorted(calls.items())), "estimated_cost_usd": round(cost, 6),
            "price_per_1k_usd": dict(sorted(prices.items()))}
