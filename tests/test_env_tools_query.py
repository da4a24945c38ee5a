"""The TRL tool route writes well-formed text-search turns whatever query the model passes.

Regression: `text_search(query)` used to write the query into the turn as given; under the default
official rules a newline in it kept the turn from searching (the episode ended on an invalid turn)
and an empty query ended the episode.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsearch_gym.envs.grammar import GRAMMAR_TAGS, one_line_query, parse_action, text_search_turn, turn_is_well_formed
from mmsearch_gym.trainers.config import EnvConfig, SynthConfig
from mmsearch_gym.trainers.env_tools import EMPTY_QUERY, ENDED, EnvironmentFactory
from mmsearch_gym.trainers.environment import make_env_factory

_PIECE = st.sampled_from([*GRAMMAR_TAGS, "\n", " ", "\t", "<", ">", "/", "a", "é", "Tower"]) | st.text(max_size=4)
_PIECES = st.lists(_PIECE, max_size=12).map("".join)


@given(_PIECES)
def test_a_cleaned_query_always_makes_a_well_formed_searching_turn(query):
    line = one_line_query(query)
    if not line:
        return
    turn = text_search_turn("r", line)
    action = parse_action(turn)
    assert action.kind == "text_search" and action.query == line
    assert turn_is_well_formed(turn, "text_search")


@pytest.fixture(scope="module")
def tools():
    make_env, samples = make_env_factory(EnvConfig(synth=SynthConfig(seed=0, n_entities=3, n_questions=6), top_k=2))
    sample = next(s for s in samples if s.meta["needs"] == "image")
    return EnvironmentFactory(make_env)(), sample


def test_a_query_with_newlines_still_searches(tools):
    env, sample = tools
    env.reset(sample_id=sample.id)
    blocks = env.text_search("height of\nthe  tower\n")
    assert blocks != [{"type": "text", "text": ENDED}]
    assert env._info["action_kind"] == "text_search"  # the old code sent an invalid turn and ended here
    assert env._done is False


@pytest.mark.parametrize("query", ["", "   \n ", "<answer></answer>", None])
def test_an_empty_query_is_refused_without_ending_the_episode(tools, query):
    env, sample = tools
    env.reset(sample_id=sample.id)
    assert env.text_search(query) == [{"type": "text", "text": EMPTY_QUERY}]
    assert env._done is False
    assert env.answer(sample.answers[0]).startswith("Answer recorded")
    assert env.get_reward() > 0
