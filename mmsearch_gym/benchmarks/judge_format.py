"""The judge's contract: its versioned prompt, the strict reply format, and the items and verdicts.

Reply format (the one we ask for and accept): a single JSON object and nothing else,
`{"verdict": "yes" | "no", "reason": "<one sentence>"}` — keys exactly these two, the verdict
case-insensitive; one surrounding Markdown code fence is tolerated. Why strict: a verdict parsed out of
free text would depend on the judge model's phrasing, and judged accuracy must be reproducible;
`PROMPT_VERSION` is part of every verdict's cache key, so a changed prompt never reuses old verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mmsearch_gym.checks import parse_json_object
from mmsearch_gym.imaging import ImageLike
from mmsearch_gym.net.secrets import redact

__all__ = [
    "JudgeError", "JudgeItem", "PROMPT_VERSION", "REMINDER", "SYSTEM_PROMPT", "Verdict", "VerdictFormatError",
    "as_strings", "excerpt", "parse_verdict",
]

PROMPT_VERSION = "judge-v1"
REPLY_EXCERPT_CHARS = 300

SYSTEM_PROMPT = """\
You grade answers to visual questions. You are given a question about an image, the reference \
answer, other acceptable answers, and a response to grade. Decide whether the response gives the \
same answer as the reference answer or as one of the acceptable answers.

Rules:
- Judge meaning, not wording: synonyms, translations, abbreviations, extra correct detail and \
different formatting of the same name, date or number are fine.
- The response is wrong if it gives a different answer, several alternative answers, an answer that \
is less specific than the reference in a way that matters, or no answer.
- Numbers must agree up to rounding and units.
- The reference answers are correct by definition; the image is context only.

Reply with exactly one JSON object and nothing else:
{"verdict": "yes" or "no", "reason": "<one short sentence>"}"""

REMINDER = ("Your reply could not be parsed ({problem}). Reply again with only a JSON object of the "
            "form {{\"verdict\": \"yes\" or \"no\", \"reason\": \"<one short sentence>\"}} and nothing else.")

_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?\s*```$", re.DOTALL)


class JudgeError(RuntimeError):
    """The judge could not produce a verdict (HTTP failure after retries, or malformed replies).
    The message is redacted on construction: it ends up in `judged.json`."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class VerdictFormatError(ValueError):
    """A reply that does not follow the verdict format; the message says what is wrong."""


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str
    cached: bool = field(default=False, compare=False)
    """True when the verdict came from the on-disk cache (no request was made)."""


@dataclass(frozen=True)
class JudgeItem:
    """One answer to judge. `gold` is the reference answer(s); `candidates` other accepted answers."""

    question: str
    gold: tuple[str, ...]
    response: str
    candidates: tuple[str, ...] = ()
    image: ImageLike | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gold", as_strings(self.gold, "gold"))
        object.__setattr__(self, "candidates", as_strings(self.candidates, "candidates"))
        for name in ("question", "response"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"JudgeItem.{name} must be a string, got {type(getattr(self, name)).__name__}")
        if not self.gold:
            raise ValueError("JudgeItem.gold needs at least one reference answer")


def as_strings(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{name} must be a string or a list of strings, got {value!r}")


def parse_verdict(text: str | None) -> Verdict:
    """The verdict in a reply, or VerdictFormatError saying why the reply does not follow the format."""
    if not isinstance(text, str) or not text.strip():
        raise VerdictFormatError("empty reply")
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    value = parse_json_object(body, "", error=VerdictFormatError)
    if set(value) != {"verdict", "reason"}:
        raise VerdictFormatError(f"expected exactly the keys 'verdict' and 'reason', got {sorted(value)}")
    verdict, reason = value["verdict"], value["reason"]
    if not isinstance(verdict, str) or verdict.strip().lower() not in ("yes", "no"):
        raise VerdictFormatError(f"'verdict' must be \"yes\" or \"no\", got {verdict!r}")
    if not isinstance(reason, str):
        raise VerdictFormatError(f"'reason' must be a string, got {type(reason).__name__}")
    return Verdict(correct=verdict.strip().lower() == "yes", reason=reason.strip())


def excerpt(text: Any, limit: int = REPLY_EXCERPT_CHARS) -> str:
    shown = redact(repr(text))  # before cutting: a secret cut in half would no longer be recognised
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
