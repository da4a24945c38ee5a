"""`VQASample`: construction-time checks of answers, and decoding errors that name the sample."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, strategies as st
from PIL import Image

from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.imaging import ImageError
from mmsearch_gym.search import StaticSearchBackend

PIXELS = np.zeros((4, 4, 3), dtype=np.uint8)


def truncated_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()[:300]


@pytest.mark.parametrize("answers, message", [
    ((), r"sample 's': answers is empty"),
    ([], r"sample 's': answers is empty"),
    ((1887,), r"sample 's': answers\[0\] must be a string, got int 1887"),
    (("Paris", None), r"answers\[1\] must be a string, got NoneType"),
    (("",), r"answers\[0\] is empty"),
    (("  ",), r"answers\[0\] is empty"),
    (1887, r"answers must be a list or tuple of strings, got int"),
    ({"a": 1}, r"answers must be a list or tuple of strings, got dict"),
    (b"Paris", r"answers must be a list or tuple of strings, got bytes"),
])
def test_unscorable_answers_are_rejected_at_construction(answers: object, message: str) -> None:
    """Regression: answers=() was accepted (never scores) and int answers failed only at step time."""
    with pytest.raises(ValueError, match=message):
        VQASample("s", PIXELS, "Who?", answers)  # type: ignore[arg-type]


@pytest.mark.parametrize("candidates, message", [
    ((7,), r"candidate_answers\[0\] must be a string, got int"),
    (("",), r"candidate_answers\[0\] is empty"),
    (3.5, r"candidate_answers must be a list or tuple of strings, got float"),
])
def test_candidate_answers_are_checked_too(candidates: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VQASample("s", PIXELS, "Who?", ("A",), candidate_answers=candidates)  # type: ignore[arg-type]


def test_strings_become_one_answer_and_lists_tuples() -> None:
    sample = VQASample("s", PIXELS, "Who?", "Paris", candidate_answers="City of Light")  # type: ignore[arg-type]
    assert sample.answers == ("Paris",) and sample.candidate_answers == ("City of Light",)
    sample = VQASample("s", PIXELS, "Who?", ["Paris", "paris"], candidate_answers=[np.str_("P")])
    assert sample.answers == ("Paris", "paris") and sample.candidate_answers == ("P",)
    assert type(sample.candidate_answers[0]) is str
    assert sample.gold == ("Paris", "paris", "P")
    with pytest.raises(ValueError, match="question must be a string"):
        VQASample("s", PIXELS, None, ("A",))  # type: ignore[arg-type]


@given(st.lists(st.text(min_size=1).filter(str.strip), min_size=1, max_size=4))
def test_any_non_empty_strings_are_accepted_in_order(answers: list[str]) -> None:
    assert VQASample("s", PIXELS, "q", answers).answers == tuple(answers)


def test_image_origin_is_not_part_of_equality() -> None:
    assert VQASample("s", PIXELS, "q", ("a",), image_origin="f.parquet: row 1") == \
        VQASample("s", PIXELS, "q", ("a",))


def test_corrupt_image_names_sample_and_origin_in_one_line() -> None:
    sample = VQASample("s-7", truncated_png(), "q", ("a",), image_origin="data.parquet: row 7, column 'images[0]'")
    with pytest.raises(ImageError) as caught:
        sample.rgb()
    message = str(caught.value)
    assert message.startswith("sample 's-7' (data.parquet: row 7, column 'images[0]'): cannot decode image bytes")
    assert "\n" not in message
    with pytest.raises(ImageError, match=r"^sample 'f': image array of dtype float64 has values in \[2, 2\]"):
        VQASample("f", np.full((2, 2, 3), 2.0), "q", ("a",)).rgb()


def test_env_reset_on_a_corrupt_image_names_the_sample() -> None:
    """Regression: the env died mid-run with a PIL error that named no sample."""
    good = VQASample("good", PIXELS, "q?", ("a",))
    bad = VQASample("bad", truncated_png(), "q?", ("a",), image_origin="set.parquet: row 1, column 'images[0]'")
    env = gym.make("mmsearch_gym:ImageSearchVQA-v0", dataset=[good, bad], search=StaticSearchBackend())
    try:
        env.reset(options={"sample_id": "good"})
        with pytest.raises(ImageError, match=r"sample 'bad' \(set\.parquet: row 1, column 'images\[0\]'\)"):
            env.reset(options={"sample_id": "bad"})
    finally:
        env.close()
