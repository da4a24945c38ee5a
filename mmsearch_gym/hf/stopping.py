"""Stop strings: where a generated turn ends, for every token-by-token engine.

Why one place: the transformers agent and the rollout collector must stop a turn at the same token.
They once had two copies of this logic with different end-of-sequence handling; now both build their
stopping criterion with `stop_criteria` and decide where a row ended with `stop_position`.

The stop strings themselves are parameters: which strings end a turn is the action grammar's business
(`mmsearch_gym.envs.grammar.ACTION_CLOSE_TAGS`), not this layer's. Pure Python except `stop_criteria`,
which imports torch/transformers when called.
"""

from __future__ import annotations

import functools
from typing import Any, Collection, Iterable, Literal, Sequence

__all__ = ["StopChecker", "StopReason", "check_stop_strings", "find_stop", "stop_criteria", "stop_position",
           "truncate_at_stop"]

StopReason = Literal["eos", "stop", "length"]


def check_stop_strings(stop: Iterable[str] | None) -> tuple[str, ...]:
    """Validate and normalise a stop-string argument (None: no stop strings)."""
    if stop is None:
        return ()
    if isinstance(stop, str):
        raise TypeError(f"stop must be a sequence of strings, not the single string {stop!r}")
    strings = tuple(stop)
    for item in strings:
        if not isinstance(item, str) or not item:
            raise ValueError(f"every stop string must be a non-empty str, got {item!r} in {strings!r}")
    return strings


def find_stop(text: str, stop: Sequence[str]) -> tuple[int, str] | None:
    """(end offset, stop string) of the stop string that ends first in `text`, or None.

    "Ends first" so that a turn is cut at the earliest point where generation would have stopped.
    """
    best: tuple[int, str] | None = None
    for item in stop:
        position = text.find(item)
        if position >= 0:
            end = position + len(item)
            if best is None or end < best[0]:
                best = (end, item)
    return best


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """`text` cut just after the first stop string (kept); unchanged when none occurs.

    Needed even when the engine stops by itself: a token can run past the end of the stop string
    (e.g. `</answer>\\n` as one token), and HF stops a batch row only at token boundaries.
    """
    found = find_stop(text, stop)
    return text if found is None else text[: found[0]]


class StopChecker:
    """Incremental check "has the generated text reached a stop string?" for token-by-token engines.

    Only the tail of the decoded text can contain a new match, so callers decode just the last
    `tail_tokens` tokens of each row at each step (a stop string of n characters spans at most n
    tokens, plus partial UTF-8 bytes on each side).
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = check_stop_strings(stop)
        self.tail_tokens = max((len(item) for item in self.stop), default=0) + 2

    def hit(self, decoded_tail: str) -> bool:
        return any(item in decoded_tail for item in self.stop)


def stop_position(generated: Sequence[int], eos_ids: Collection[int], tokenizer: Any,
                  checker: StopChecker) -> tuple[int, StopReason]:
    """(how many of a row's generated ids it really sampled, why it ended).

    The row ended at its first eos id ("eos"), at the step where `stop_criteria` fired ("stop"), or
    ran out of ids ("length"); whatever `generate` wrote after that point is padding. Mirrors
    `stop_criteria` step for step (same tail window, same decoding), so the two cannot disagree.
    """
    tail = checker.tail_tokens
    for position, token in enumerate(generated):
        if token in eos_ids:
            return position + 1, "eos"
        if checker.stop:
            window = list(generated[max(0, position + 1 - tail): position + 1])
            if checker.hit(tokenizer.decode(window, skip_special_tokens=True)):
                return position + 1, "stop"
    return len(generated), "length"


@functools.lru_cache(maxsize=1)
def _criteria_class() -> type:
    import torch
    from transformers import StoppingCriteria

    class StopAtString(StoppingCriteria):
        """Ends each row once its *generated* ids decode to text holding a stop string. The prompt is
        never looked at (earlier turns in it end with the same tags), and only the last `tail_tokens`
        generated ids are decoded, so the check is O(1) per step."""

        def __init__(self, tokenizer: Any, checker: StopChecker, input_length: int) -> None:
            self.tokenizer, self.checker, self.input_length = tokenizer, checker, input_length

        def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
            start = max(self.input_length, input_ids.shape[1] - self.checker.tail_tokens)
            tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
            return torch.tensor([self.checker.hit(tail) for tail in tails], dtype=torch.bool,
                                device=input_ids.device)

    return StopAtString


def stop_criteria(tokenizer: Any, checker: StopChecker, input_length: int) -> list[Any]:
    """The `stopping_criteria` entries for one `generate` call whose inputs are `input_length` ids
    long (left-padded): one criterion when there are stop strings, none otherwise."""
    return [_criteria_class()(tokenizer, checker, input_length)] if checker.stop else []
