"""Judging evaluation records: judged accuracy beside exact match.

Why separate from the client: a run directory's records (one per episode) need bookkeeping the judge
does not — records without an answer are wrong without a request, images come from the dataset by
sample id, and a failed verdict can be recorded (counted wrong, with its redacted error) instead of
stopping the whole run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from mmsearch_gym.benchmarks.judge_format import PROMPT_VERSION, JudgeError, JudgeItem
from mmsearch_gym.imaging import ImageLike

if TYPE_CHECKING:
    from mmsearch_gym.benchmarks.judge import LLMJudge

__all__ = ["ImageLookup", "JudgedRecords", "RECORD_KEYS", "RecordVerdict", "judge_records"]

RECORD_KEYS = ("sample_id", "question", "answer", "gold")


@dataclass(frozen=True)
class RecordVerdict:
    sample_id: str
    correct: bool
    reason: str
    cached: bool = False
    error: str | None = None
    """The JudgeError message when on_error="record" (the record then counts as incorrect)."""


@dataclass(frozen=True)
class JudgedRecords:
    verdicts: tuple[RecordVerdict, ...]
    accuracy: float
    """Share of records judged correct (0.0 for no records); errors and missing answers count as wrong."""
    n: int
    n_correct: int
    n_errors: int
    judge_model: str
    prompt_version: str = PROMPT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdicts": [asdict(v) for v in self.verdicts]}


ImageLookup = Union[Callable[[str], Optional[ImageLike]], Mapping[str, ImageLike]]


def _record_item(position: int, record: Mapping[str, Any], images: ImageLookup | None
                 ) -> tuple[str, JudgeItem | None]:
    for key in RECORD_KEYS:
        if key not in record:
            raise ValueError(f"evaluation record {position}: missing key {key!r} (has {sorted(record)})")
    sample_id = str(record["sample_id"])
    answer = record["answer"]
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        return sample_id, None
    if not isinstance(answer, str):
        raise ValueError(f"evaluation record {position} ({sample_id}): 'answer' must be a string or None, "
                         f"got {type(answer).__name__}")
    image = record.get("image")
    if image is None and images is not None:
        image = images.get(sample_id) if isinstance(images, Mapping) else images(sample_id)
    try:
        item = JudgeItem(question=record["question"], gold=record["gold"], response=answer,
                         candidates=record.get("candidates") or (), image=image)
    except ValueError as error:
        raise ValueError(f"evaluation record {position} ({sample_id}): {error}") from error
    return sample_id, item


def judge_records(records: Iterable[Mapping[str, Any]], judge: LLMJudge, *,
                  images: ImageLookup | None = None,
                  on_error: Literal["raise", "record"] = "raise") -> JudgedRecords:
    """Judge evaluation records and compute judged accuracy.

    records: dicts with `sample_id`, `question`, `answer` (the final answer; None = none given),
        `gold` (str or list of str) and optionally `candidates` and `image`.
    images: sample_id -> image (a mapping or a function) for records without an `image`, so a
        run directory's records can be judged with the dataset's images.
    on_error: "raise" stops at the first JudgeError; "record" marks that record wrong with the error.
    A record with no answer is wrong without asking the judge.
    """
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', got {on_error!r}")
    prepared = [_record_item(position, record, images) for position, record in enumerate(records)]
    to_judge = [item for _, item in prepared if item is not None]
    results = iter(judge.judge_many(to_judge, return_exceptions=on_error == "record"))
    verdicts: list[RecordVerdict] = []
    for sample_id, item in prepared:
        if item is None:
            verdicts.append(RecordVerdict(sample_id, False, "no final answer"))
            continue
        result = next(results)
        if isinstance(result, JudgeError):
            verdicts.append(RecordVerdict(sample_id, False, "judge failed", error=str(result)))
        else:
            verdicts.append(RecordVerdict(sample_id, result.correct, result.reason, cached=result.cached))
    n_correct = sum(v.correct for v in verdicts)
    return JudgedRecords(verdicts=tuple(verdicts), accuracy=n_correct / len(verdicts) if verdicts else 0.0,
                         n=len(verdicts), n_correct=n_correct, n_errors=sum(v.error is not None for v in verdicts),
                         judge_model=judge.model)
