"""Strict JSON for what strangers send: the documents and episode lines of a submission package.

Why stricter than `json.loads`: a leaderboard must read a package the way every other reader would.
Plain `json.loads` keeps the *last* of two equal keys, so `{"suite_hash": "forged", …, "suite_hash":
"<real>"}` passes our checks while a tool that keeps the first key sees the forged one; it accepts
`NaN`/`Infinity` and turns `1e400` into an infinity, none of which is JSON; and it returns lone UTF-16
surrogates ("\\ud800") that no UTF-8 file, web page or terminal can hold, which used to crash the site
build far from their cause. Each of these is a `ValueError` here, naming where it is.

`canonical` is the one comparison form: equal values, and only equal values, give equal strings.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["canonical", "parse_json", "text_problem"]


def canonical(value: Any) -> str:
    """The comparison form of a JSON value: equal values, and only equal values, give equal strings
    (so 1 and 1.0, or True and 1, are told apart)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise ValueError(f"the number {token[:40]} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise ValueError(f"duplicate key {key!r} (readers disagree on which one counts)")
        value[key] = item
    return value


def text_problem(value: Any) -> str | None:
    """Why `value` cannot be written as UTF-8 text (it holds a lone surrogate), or None."""
    try:
        canonical(value).encode("utf-8")
    except UnicodeEncodeError as error:
        return (f"holds the lone surrogate {ascii(error.object[error.start])}, which is not Unicode text "
                "(no UTF-8 file or web page can show it)")
    return None


def parse_json(data: bytes, where: str, *, allow_surrogates: bool = False) -> Any:
    """Strict JSON: UTF-8, unique keys in every object, finite numbers only (no NaN, Infinity or
    1e400), and, unless `allow_surrogates`, valid Unicode text. Raises a one-line `ValueError`
    naming `where` and the problem.

    Episode records pass `allow_surrogates=True`: an agent may emit a lone surrogate, the run records
    it as a JSON escape, and the replay compares it exactly; text that is shown (agent card, manifest)
    may not hold one."""
    try:
        value = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as error:
        raise ValueError(f"{where} is not UTF-8 ({error})") from None
    except RecursionError:
        raise ValueError(f"{where} is nested too deeply") from None
    except ValueError as error:
        raise ValueError(f"{where} is not valid JSON: {error}") from None
    if not allow_surrogates:
        problem = text_problem(value)
        if problem:
            raise ValueError(f"{where} {problem}")
    return value
