"""Text cells: loosely typed strings and lists (a string or a list, a JSON-encoded list, numbers).

Releases of the same benchmark disagree on how a list of answers is stored; these converters accept
each form and reject anything else with an error naming the file, row and column.
"""

from __future__ import annotations

import json
from typing import Any

from mmsearch_gym.data.loaders.errors import RowContext


def as_text(context: RowContext, column: str, value: Any, allow_empty: bool = False) -> str:
    """A string cell (numbers are accepted and written in decimal: ids and numeric answers)."""
    if isinstance(value, bool) or value is None or not isinstance(value, (str, int, float)):
        raise context.error(column, f"expected a string, got {type(value).__name__}", value)
    text = value.strip() if isinstance(value, str) else str(value)
    if not text and not allow_empty:
        raise context.error(column, "is empty", value)
    return text


def as_text_list(context: RowContext, column: str, value: Any, json_encoded: bool = False) -> tuple[str, ...]:
    """A list-of-strings cell; a single string is one item, None is none. With `json_encoded`, a
    string must be a JSON list (FVQA's `candidate_answers`); otherwise a string is tried as a JSON
    list only when it looks like one (`[...]`), as some releases stringify their lists."""
    if value is None:
        return ()
    if isinstance(value, str):
        stripped = value.strip()
        if json_encoded or (stripped.startswith("[") and stripped.endswith("]")):
            if not stripped:
                return ()
            try:
                value = json.loads(stripped)
            except json.JSONDecodeError as error:
                if json_encoded:
                    raise context.error(column, f"expected a JSON-encoded list of strings ({error})",
                                        value) from error
                return (stripped,) if stripped else ()
            if isinstance(value, str):
                value = [value]
        else:
            return (stripped,) if stripped else ()
    if isinstance(value, (list, tuple)):
        items: list[str] = []
        for position, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise context.error(f"{column}[{position}]", f"expected a string, got {type(item).__name__}",
                                    item)
            text = item.strip() if isinstance(item, str) else str(item)
            if text and text not in items:
                items.append(text)
        return tuple(items)
    raise context.error(column, f"expected a list of strings, got {type(value).__name__}", value)
