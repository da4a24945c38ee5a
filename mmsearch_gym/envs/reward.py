"""Answer scoring and the MMSearch-R1 reward (DESIGN §4).

reward = (1 − α)·score' + α·format, where score' is the answer score after the search penalty.
Two published variants of the penalty are supported:

- ``multiplicative`` (MMSearch-R1's code and paper, the default): a correct answer after any search
  is worth ``1 − p``; so 1.0 / 0.91 / 0.9 / 0.81 / 0.1 / 0 for the usual cases.
- ``subtractive`` (the formula as quoted in summaries): ``score − p`` whenever a search was made, so a
  wrong answer after a search costs 0.09 more than a wrong answer without one.

As in MMSearch-R1's code, the multiplicative penalty applies only to a correct answer (score > 0.99)
and the optional warm-up moves the penalty from −p to +p. One deliberate difference: a gold answer
that normalises to "" (for example "A", an article) matches nothing, where the official EM and SubEM
checks let it match an empty answer or every answer.

>>> compute_reward(score=1.0, format_score=1, searches=1)   # correct, well formed, searched
0.91
>>> score_answer("the Eiffel Tower!", ("Eiffel Tower",))
1.0
>>> score_answer("", ("A",))   # "A" normalises to ""
0.0
"""

from __future__ import annotations

import re
import string
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Literal, Mapping, Sequence, Union

from mmsearch_gym.checks import require_bool, require_int, require_number

Scorer = Callable[[str, Sequence[str]], float]
"""A scorer maps (predicted answer, accepted answers) to a score in [0, 1]."""

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lowercase, drop ASCII punctuation and the articles a/an/the,
    collapse whitespace."""
    text = text.lower().translate(_PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any non-empty normalised accepted answer (a gold
    answer normalising to "" would otherwise match an empty prediction)."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == gold for gold in map(normalize_answer, answers) if gold))


def substring_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when any non-empty normalised accepted answer occurs inside the normalised prediction."""
    predicted = normalize_answer(prediction)
    for gold in answers:
        normalized = normalize_answer(gold)
        if normalized and normalized in predicted:
            return 1.0
    return 0.0


SCORERS: dict[str, Scorer] = {"exact": exact_match, "subem": substring_match}


def resolve_scorer(scorer: Union[str, Scorer]) -> Scorer:
    if callable(scorer):
        return scorer
    if scorer in SCORERS:
        return SCORERS[scorer]
    raise ValueError(f"unknown scorer {scorer!r}; use one of {sorted(SCORERS)} or a callable")


def score_answer(answer: str | None, answers: Sequence[str], scorer: Union[str, Scorer] = "exact") -> float:
    """Score of a final answer; no answer at all scores 0. Scores are clipped into [0, 1]."""
    if answer is None:
        return 0.0
    value = float(resolve_scorer(scorer)(answer, answers))
    return min(1.0, max(0.0, value))


@dataclass(frozen=True)
class RewardConfig:
    """How an episode's answer score, format score and searches become the reward.

    format_weight: α, the share of the reward given by the format score.
    search_penalty: p, the penalty for searching (see the module docstring for the two variants).
    per_search: apply the penalty once per executed search (`(1−p)^n`, or `n·p` when subtractive)
        instead of once for any search.
    penalty_warmup_steps: when > 0, the penalty moves linearly from −p (a bonus for searching) to +p
        over this many training steps, as MMSearch-R1's trainer does (the trainer tells the env its
        step); evaluation (no step given) uses the full penalty.
    scorer: "exact", "subem" or a callable `(prediction, answers) -> float`.
    """

    format_weight: float = 0.1
    search_penalty: float = 0.1
    penalty: Literal["multiplicative", "subtractive"] = "multiplicative"
    per_search: bool = False
    penalty_warmup_steps: int = 0
    scorer: Union[str, Scorer] = "exact"

    def __post_init__(self) -> None:
        require_number("format_weight", self.format_weight, low=0.0, high=1.0)
        require_number("search_penalty", self.search_penalty, low=0.0, high=1.0)
        if self.penalty not in ("multiplicative", "subtractive"):
            raise ValueError(
                f"penalty must be 'multiplicative' or 'subtractive', got {self.penalty!r}")
        require_bool("per_search", self.per_search)
        require_int("penalty_warmup_steps", self.penalty_warmup_steps, low=0)
        resolve_scorer(self.scorer)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RewardConfig:
        """A config from a dict of its fields (e.g. a CLI ``--env reward=...`` value); an unknown key
        is refused with the list of valid fields."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(valid), key=str)
        if unknown:
            raise ValueError(f"unknown reward field(s) {unknown}; valid fields: {valid}")
        return cls(**values)

    def penalty_at(self, step: int | None) -> float:
        """The search penalty in force at training step `step` (full penalty when `step` is None):
        −p at step 0 rising linearly to +p at `penalty_warmup_steps`."""
        if step is None or self.penalty_warmup_steps == 0:
            return self.search_penalty
        progress = min(1.0, max(0, step) / self.penalty_warmup_steps)
        return self.search_penalty * (2.0 * progress - 1.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (a callable scorer is recorded by its qualified name)."""
        data = asdict(self)
        if callable(self.scorer):
            data["scorer"] = getattr(self.scorer, "__qualname__", repr(self.scorer))
        return data


def compute_reward(score: float, format_score: int, searches: int, config: RewardConfig = RewardConfig(),
                   step: int | None = None) -> float:
    """The episode reward from its answer score, format score and the number of searches the rule
    set counts. The multiplicative penalty applies only to a correct answer (score > 0.99)."""
    p = config.penalty_at(step)
    alpha = config.format_weight
    times = searches if config.per_search else min(searches, 1)
    if config.penalty == "multiplicative":
        penalised = score * (1.0 - p) ** times if score > 0.99 else score
    else:
        penalised = score - p * times
    return (1.0 - alpha) * penalised + alpha * format_score
