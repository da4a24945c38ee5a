"""The agent card: who made a leaderboard submission, with what model, under what search budget.

Why checked field by field: the card is the only free text a submitter puts on the public page, and
its `search_budget` is enforced against the re-played episodes. A value that is the wrong type, absurdly
large (`size: 10**400` once crashed the validator converting it to a float) or not Unicode text is a
reason to refuse the package, named with the field and the value.
"""

from __future__ import annotations

from typing import Any, Mapping

from mmsearch_gym.benchmarks.package_json import text_problem
from mmsearch_gym.checks import require_int, require_number

AGENT_CARD_FILE = "agent_card.json"
REQUIRED_CARD_FIELDS = ("model", "size", "search_budget", "contact")
MAX_PARAMETERS = 10**15
"""The largest parameter count a card may state (a thousand times today's largest models)."""

__all__ = ["AGENT_CARD_FILE", "MAX_PARAMETERS", "REQUIRED_CARD_FIELDS", "agent_card_problems"]


def _valid_size(size: Any) -> bool:
    if isinstance(size, str):
        return bool(size.strip()) and len(size) <= 50
    try:  # an int is checked as an int: float(10**400) would overflow
        if isinstance(size, int):
            require_int("size", size, low=1, high=MAX_PARAMETERS)
        else:
            require_number("size", size, low=0.0, high=float(MAX_PARAMETERS), low_inclusive=False)
    except ValueError:
        return False
    return True


def _valid_budget(budget: Any) -> bool:
    try:
        require_int("search_budget", budget, low=0)
    except ValueError:
        return False
    return True


def _valid_contact(contact: Any) -> bool:
    return isinstance(contact, str) and len(contact) <= 320 and (
        "@" in contact.strip(" @") or contact.startswith(("http://", "https://")))


def agent_card_problems(card: Any) -> list[str]:
    """Every problem with an agent card, each naming the field and the bad value (empty: the card is fine).

    Required: `model` (name of the model), `size` (e.g. "7B", or a parameter count up to
    `MAX_PARAMETERS`), `search_budget` (the most searches per episode the agent was configured to make)
    and `contact` (an e-mail address or an http(s) URL). Optional: `name` (the row's label; default:
    the run manifest's agent name). Every text must be valid Unicode (no lone surrogates).
    """
    if not isinstance(card, Mapping):
        return [f"agent card must be a JSON object, got {type(card).__name__}"]
    problems = [f"agent card field {key!r} is missing" for key in REQUIRED_CARD_FIELDS if key not in card]
    for key in ("model", "name"):
        if key in card and (not isinstance(card[key], str) or not card[key].strip() or len(card[key]) > 200):
            problems.append(f"agent card field {key!r} must be a non-empty string of at most 200 characters, "
                            f"got {card[key]!r}")
    if "size" in card and not _valid_size(card["size"]):
        problems.append(f"agent card field 'size' must be a label like '7B' or a positive parameter count "
                        f"(at most {MAX_PARAMETERS:,}), got {_shown(card['size'])}")
    if "search_budget" in card and not _valid_budget(card["search_budget"]):
        problems.append(f"agent card field 'search_budget' must be an integer >= 0 (searches per episode), "
                        f"got {_shown(card['search_budget'])}")
    if "contact" in card and not _valid_contact(card["contact"]):
        problems.append(f"agent card field 'contact' must be an e-mail address or an http(s) URL, "
                        f"got {_shown(card['contact'])}")
    for key in sorted(card, key=str):
        problem = text_problem({key: card[key]})
        if problem:
            problems.append(f"agent card field {ascii(key)} {problem}")
    return problems


def _shown(value: Any) -> str:
    """`repr` cut to 80 characters: a 400-digit number or a long string stays a one-line reason."""
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"
