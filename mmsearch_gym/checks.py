"""Argument checks that every layer shares: one rule for "is this an int/number in range".

Why one place: ``True`` is an ``int`` in Python, NumPy integers are not, and ``float("nan")`` compares
false with everything, so each hand-written ``isinstance`` check drifted (three ``top_k`` validators
once behaved differently). These helpers give one behaviour and one error wording, naming the argument
and the bad value, so a user sees ``max_turns must be an int >= 1, got 0`` and nothing else.

>>> require_int("max_turns", 3, low=1)
3
>>> require_int("top_k", True, low=1)
Traceback (most recent call last):
    ...
ValueError: top_k must be an int >= 1, got True
>>> require_number("temperature", 0.7, low=0.0, high=2.0)
0.7
>>> require_number("size", 10**400)
Traceback (most recent call last):
    ...
ValueError: size must be a number, got 100000000000000000...0000000000000000000
>>> require_number("top_p", 0.0, low=0.0, high=1.0, low_inclusive=False)
Traceback (most recent call last):
    ...
ValueError: top_p must be a number in (0.0, 1.0], got 0.0

The same holds for a JSON object read from a file, a reply or a variable: one wording, naming where it came from.

>>> parse_json_object('{"max_turns": 4}', "MMSEARCH_GYM_ENV")
{'max_turns': 4}
>>> parse_json_object("[1]", "'pages.jsonl' line 3")
Traceback (most recent call last):
    ...
ValueError: 'pages.jsonl' line 3: expected a JSON object, got list
>>> parse_json_object("{", "'pages.jsonl' line 4")
Traceback (most recent call last):
    ...
ValueError: 'pages.jsonl' line 4: malformed JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))
"""

from __future__ import annotations

import json
import math
import numbers
import reprlib
from collections.abc import Callable
from typing import Any

__all__ = ["parse_json_object", "require_int", "require_number", "require_bool"]


def _shown(value: Any) -> str:
    """The bad value as the error shows it: its repr, abbreviated (a hostile 10**400 or a megabyte string
    must not become a megabyte error message)."""
    return reprlib.repr(value)


def _range_text(low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool) -> str:
    if low is not None and high is not None:
        return f" in {'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
    if low is not None:
        return f" {'>=' if low_inclusive else '>'} {low}"
    if high is not None:
        return f" {'<=' if high_inclusive else '<'} {high}"
    return ""


def _in_range(value: float, low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool) -> bool:
    if low is not None and (value < low or (not low_inclusive and value == low)):
        return False
    if high is not None and (value > high or (not high_inclusive and value == high)):
        return False
    return True


def require_int(name: str, value: Any, *, low: int | None = None, high: int | None = None,
                allow: tuple[int, ...] = ()) -> int:
    """Return ``value`` as a plain ``int`` if it is an integer (NumPy integers included, ``bool`` not)
    within ``[low, high]`` or one of the special values in ``allow`` (e.g. ``-1`` meaning "no limit");
    otherwise raise ``ValueError`` naming ``name`` and the value."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and (int(value) in allow or _in_range(int(value), low, high, True, True)):
        return int(value)
    extra = f" or one of {list(allow)}" if allow else ""
    raise ValueError(f"{name} must be an int{_range_text(low, high, True, True)}{extra}, got {_shown(value)}")


def require_number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                   low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number (not ``bool``) within the range;
    otherwise raise ``ValueError`` naming ``name`` and the value."""
    try:  # float(10**400) overflows: too big is as out of range as infinity
        number = float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else math.nan
    except OverflowError:
        number = math.nan
    if math.isfinite(number) and _in_range(number, low, high, low_inclusive, high_inclusive):
        return number
    raise ValueError(f"{name} must be a number{_range_text(low, high, low_inclusive, high_inclusive)}, "
                     f"got {_shown(value)}")


def require_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a real ``bool``. Strings are refused: ``"false"`` is truthy, so taking it
    as a flag silently inverts the user's intent."""
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be true or false, got {_shown(value)}")


def parse_json_object(text: str | bytes, where: str, *,
                      error: Callable[[str], Exception] = ValueError) -> dict[str, Any]:
    """The JSON object in ``text``, or ``error("<where>: malformed JSON (<why>)")`` /
    ``error("<where>: expected a JSON object, got <type>")``. Bytes that are not UTF-8 and nesting too
    deep for the parser (a hostile ``[[[[…``) count as malformed, so a bad file never escapes as a
    traceback. An empty ``where`` gives the message without the prefix."""
    prefix = f"{where}: " if where else ""
    try:
        value = json.loads(text)
    except ValueError as failure:  # JSONDecodeError and UnicodeDecodeError
        raise error(f"{prefix}malformed JSON ({failure})") from None
    except RecursionError:
        raise error(f"{prefix}malformed JSON (nested too deeply)") from None
    if not isinstance(value, dict):
        raise error(f"{prefix}expected a JSON object, got {type(value).__name__}")
    return value
