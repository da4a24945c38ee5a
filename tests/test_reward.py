"""Answer scoring and the reward table of DESIGN §4 / the core issue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsearch_gym.envs import RewardConfig, compute_reward, exact_match, normalize_answer, substring_match
from mmsearch_gym.envs.reward import score_answer


@pytest.mark.parametrize("raw, normalized", [
    ("The Eiffel Tower!", "eiffel tower"),
    ("  an   Apple, a day ", "apple day"),
    ("Theater", "theater"),
    ("U.S.A.", "usa"),
    ("", ""),
])
def test_normalize_answer(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_and_substring_match_use_all_gold_answers():
    assert exact_match("the Eiffel Tower", ["Eiffel tower"]) == 1.0
    assert exact_match("Eiffel", ["Eiffel tower"]) == 0.0
    assert substring_match("It is the Eiffel Tower in Paris", ["eiffel tower"]) == 1.0
    assert substring_match("anything", [""]) == 0.0
    assert score_answer("in 1887", ("1887", "in 1887")) == 1.0
    assert score_answer(None, ("1887",)) == 0.0
    assert score_answer("x", ("y",), scorer=lambda p, a: 7.0) == 1.0  # clipped into [0, 1]


MULTIPLICATIVE = [
    # score, format, searches, reward
    (1, 1, 0, 1.0),
    (1, 1, 1, 0.91),
    (1, 1, 2, 0.91),
    (1, 0, 0, 0.9),
    (1, 0, 1, 0.81),
    (0, 1, 0, 0.1),
    (0, 1, 2, 0.1),
    (0, 0, 0, 0.0),
    (0, 0, 1, 0.0),
]


@pytest.mark.parametrize("score, fmt, searches, reward", MULTIPLICATIVE)
def test_multiplicative_reward_table(score, fmt, searches, reward):
    assert compute_reward(score, fmt, searches) == pytest.approx(reward)


SUBTRACTIVE = [
    (1, 1, 0, 1.0),
    (1, 1, 1, 0.91),
    (1, 0, 1, 0.81),
    (0, 1, 1, 0.01),
    (0, 1, 0, 0.1),
    (0, 0, 1, -0.09),
]


@pytest.mark.parametrize("score, fmt, searches, reward", SUBTRACTIVE)
def test_subtractive_reward_table(score, fmt, searches, reward):
    config = RewardConfig(penalty="subtractive")
    assert compute_reward(score, fmt, searches, config) == pytest.approx(reward)


def test_per_search_penalty_and_warmup():
    per_search = RewardConfig(per_search=True)
    assert compute_reward(1, 1, 2, per_search) == pytest.approx(0.9 * 0.81 + 0.1)
    # MMSearch-R1's warm-up: the penalty moves from -p (a bonus for searching) to +p
    warm = RewardConfig(penalty_warmup_steps=100)
    assert warm.penalty_at(0) == pytest.approx(-0.1)
    assert warm.penalty_at(25) == pytest.approx(-0.05)
    assert warm.penalty_at(50) == pytest.approx(0.0)
    assert warm.penalty_at(100) == pytest.approx(0.1)
    assert compute_reward(1, 1, 1, warm, step=0) == pytest.approx(0.9 * 1.1 + 0.1)
    assert compute_reward(1, 1, 1, warm, step=50) == pytest.approx(1.0)
    assert compute_reward(1, 1, 1, warm, step=75) == pytest.approx(0.9 * 0.95 + 0.1)
    assert compute_reward(1, 1, 1, warm, step=1000) == pytest.approx(0.91)
    assert compute_reward(1, 1, 1, warm, step=None) == pytest.approx(0.91)
    assert compute_reward(0, 1, 1, warm, step=0) == pytest.approx(0.1)  # only a correct answer moves


def test_penalty_applies_only_to_a_correct_answer():
    """MMSearch-R1 penalises only when score > 0.99, so a partial score from a custom scorer keeps
    its value after a search."""
    assert compute_reward(0.5, 1, 1) == pytest.approx(0.9 * 0.5 + 0.1)
    assert compute_reward(0.995, 0, 1) == pytest.approx(0.9 * 0.995 * 0.9)


def test_gold_answer_normalising_to_empty_matches_nothing():
    """Regression: "A" normalises to "" (an article), which matched an empty answer under EM (and,
    in the official SubEM, every answer)."""
    assert score_answer("", ("A",)) == 0.0
    assert score_answer("the", ("A",)) == 0.0
    assert score_answer("anything", ("A",), scorer="subem") == 0.0
    assert score_answer("Paris", ("A", "Paris")) == 1.0


@pytest.mark.parametrize("values, fragment", [
    ({"per_search": "false"}, "per_search must be true or false, got 'false'"),
    ({"per_search": 1}, "per_search must be true or false"),
    ({"format_weight": "0.1"}, "format_weight"),
    ({"format_weight": float("nan")}, "format_weight"),
    ({"penalty_warmup_steps": 2.5}, "penalty_warmup_steps"),
    ({"penalty_warmup_steps": True}, "penalty_warmup_steps"),
    ({"perSearch": True}, "unknown reward field(s) ['perSearch']; valid fields: ['format_weight'"),
])
def test_reward_mapping_is_checked(values, fragment):
    with pytest.raises(ValueError) as caught:
        RewardConfig.from_mapping(values)
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("kwargs, bad", [
    ({"format_weight": 1.5}, "1.5"),
    ({"search_penalty": -0.1}, "-0.1"),
    ({"penalty": "exponential"}, "exponential"),
    ({"scorer": "bleu"}, "bleu"),
    ({"penalty_warmup_steps": -1}, "-1"),
])
def test_bad_reward_config_names_the_value(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        RewardConfig(**kwargs)


@given(st.sampled_from([0.0, 1.0]), st.sampled_from([0, 1]), st.integers(0, 5),
       st.sampled_from(["multiplicative", "subtractive"]), st.booleans())
def test_reward_properties(score, fmt, searches, penalty, per_search):
    config = RewardConfig(penalty=penalty, per_search=per_search)
    reward = compute_reward(score, fmt, searches, config)
    no_search = compute_reward(score, fmt, 0, config)
    assert reward <= no_search + 1e-12  # searching never increases the reward
    assert compute_reward(score, 1, searches, config) - compute_reward(score, 0, searches, config) \
        == pytest.approx(0.1)  # the format score is worth exactly alpha
    if score == 1.0:
        assert reward > compute_reward(0.0, fmt, searches, config)  # correct beats wrong
    assert -1.0 <= reward <= 1.0


@given(st.text(max_size=40))
def test_normalize_is_idempotent(text):
    once = normalize_answer(text)
    assert normalize_answer(once) == once
