"""The default rule set reproduces MMSearch-R1's released semantics; `lenient` keeps the tolerant ones.

Two kinds of test:
- a table of every case where the two rule sets differ, played through the env and written from the
  documented facts (DESIGN §3, the rule set docstrings);
- a property test: the default rule set's linear scanners agree with a small reference model of the
  official semantics written here with Python `re` (slow regexes are fine on short inputs).
"""

from __future__ import annotations

import re

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmsearch_gym  # noqa: F401 - registers the env
from mmsearch_gym.envs import grammar
from mmsearch_gym.envs.rules import resolve_rules

R = "<reason>Known.</reason>"
IMAGE = "<reason>Unknown emblem.</reason><search><img></search>"
ANSWER = "<reason>The page says 1887.</reason><answer>1887</answer>"


def play(tiny_world, rules, turns, **kwargs):
    """Play `turns` until the episode ends; returns the list of (reward, terminated, info)."""
    samples, backend = tiny_world
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=backend, rules=rules, **kwargs)
    env.reset(seed=0, options={"sample_id": "rbs-year"})
    steps = []
    for turn in turns:
        _, reward, terminated, _, info = env.step(turn)
        steps.append((reward, terminated, info))
        if terminated:
            break
    return steps


# (name, turns, official (reward, steps played), lenient (reward, steps played))
DIFFERENCES = [
    ("text before the action", [R + "So:<answer>1887</answer>"], (1.0, 1), (0.9, 1)),
    ("stray <search> in the reasoning", ["<reason>Should I <search>? No.</reason><answer>1887</answer>"],
     (1.0, 1), (0.9, 1)),
    ("stray <img> in an image-search turn", ["<reason>I see <img>.</reason><search><img></search>", ANSWER],
     (0.91, 2), (0.81, 2)),
    ("spaced search tag", ["<reason>x</reason><search> <img> </search>", ANSWER], (0.0, 1), (0.91, 2)),
    ("trailing spaces and tabs after the tag", [IMAGE + " \t", ANSWER], (0.0, 1), (0.91, 2)),
    ("two newlines after the tag", [IMAGE + "\n\n", ANSWER], (0.0, 1), (0.91, 2)),
    ("one newline after the tag (Python $)", [IMAGE + "\n", ANSWER], (0.91, 2), (0.91, 2)),
    ("newline inside the text query", ["<reason>x</reason><text_search>Red Banner\nSociety</text_search>", ANSWER],
     (0.0, 1), (0.91, 2)),
    ("whitespace-only query", ["<reason>x</reason><text_search> </text_search>", ANSWER], (0.91, 2), (0.0, 1)),
    ("empty query", ["<reason>x</reason><text_search></text_search>", ANSWER], (0.0, 1), (0.0, 1)),
    ("opening answer tag twice", [R + "<answer>Rome<answer>1887</answer>"], (0.0, 1), (0.9, 1)),
    ("closing answer tag twice", [R + "<answer>1887</answer>x</answer>"], (0.9, 1), (0.0, 1)),
    ("1-turn answer holding a search string", [R + "<text_search>q</text_search> <answer>1887</answer>"],
     (0.81, 1), (0.9, 1)),
    ("1-turn answer holding the image-search string", [R + "<search><img></search> <answer>1887</answer>"],
     (0.81, 1), (0.9, 1)),
]


@pytest.mark.parametrize("name, turns, official, tolerant", DIFFERENCES, ids=[d[0] for d in DIFFERENCES])
def test_rule_set_differences(tiny_world, name, turns, official, tolerant):
    for rules, (reward, played) in (("mmsearch_r1", official), ("lenient", tolerant)):
        steps = play(tiny_world, rules, turns)
        assert len(steps) == played and steps[-1][1], (rules, steps)
        assert steps[-1][0] == pytest.approx(reward), (rules, steps[-1])
        assert steps[-1][2]["rules"] == rules


def test_default_rules_are_the_official_ones(tiny_world):
    samples, backend = tiny_world
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=backend)
    env.reset(seed=0, options={"sample_id": "rbs-year"})
    _, reward, _, _, info = env.step(R + "So:<answer>1887</answer>")
    assert info["rules"] == "mmsearch_r1" and reward == pytest.approx(1.0)


def test_whitespace_only_query_is_searched_unstripped(tiny_world):
    steps = play(tiny_world, "mmsearch_r1", ["<reason>x</reason><text_search>  Red Banner Society founded </text_search>"])
    info = steps[0][2]
    assert not steps[0][1] and info["search"]["query"] == "  Red Banner Society founded "
    assert info["search_results"][0]["query"] == "  Red Banner Society founded "


def test_official_query_is_the_last_lazy_match():
    turn = "<reason>x</reason><text_search>a<text_search>b</text_search>c</text_search>"
    action = grammar.parse_action(turn)
    assert action.kind == "text_search" and action.query == "a<text_search>b"


def test_warmup_reaches_the_env(tiny_world):
    samples, backend = tiny_world
    env = gym.make("ImageSearchVQA-v0", dataset=samples, search=backend, reward={"penalty_warmup_steps": 10})
    for step, expected in ((0, 0.9 * 1.1 + 0.1), (5, 1.0), (10, 0.91)):
        env.unwrapped.training_step = step
        env.reset(seed=0, options={"sample_id": "rbs-year"})
        env.step(IMAGE)
        _, reward, *_ = env.step(ANSWER)
        assert reward == pytest.approx(expected), step


def test_unknown_rules_are_refused(tiny_world):
    with pytest.raises(ValueError, match="unknown rules 'strict'"):
        play(tiny_world, "strict", [ANSWER])


# ------------------------------------------------------------------ reference model (slow regexes)

FORMAT_PATTERNS = {
    "answer": r"^<reason>.*</reason>.*<answer>.*</answer>$",
    "image_search": r"^<reason>.*</reason>.*<search><img></search>$",
    "text_search": r"^<reason>.*</reason>.*<text_search>.*</text_search>$",
}
# Strings a turn of each kind must not contain (beyond the counted tags).
FORBIDDEN = {
    "answer": ("<search><img></search>", "<text_search>", "</text_search>"),
    "image_search": ("<answer>", "</answer>", "<text_search>", "</text_search>"),
    "text_search": ("<answer>", "</answer>", "<search><img></search>"),
}
EXACTLY_ONE = {
    "answer": ("<reason>", "</reason>", "<answer>", "</answer>"),
    "image_search": ("<reason>", "</reason>", "<search><img></search>"),
    "text_search": ("<reason>", "</reason>", "<text_search>", "</text_search>"),
}


def reference_trigger(turn: str) -> tuple[str, str | None]:
    """('image_search' | 'text_search' | 'end', query)."""
    if re.search(r"<search><img></search>$", turn):
        return "image_search", None
    if re.search(r"<text_search>.*</text_search>$", turn):
        queries = re.findall(r"<text_search>(.*?)</text_search>", turn)
        if queries and queries[-1]:
            return "text_search", queries[-1]
    return "end", None


def reference_answer(turn: str) -> str | None:
    answers = re.findall(r"<answer>(.*?)</answer>", turn, re.DOTALL)
    return answers[-1].strip() if answers else None


def reference_turn_ok(turn: str, kind: str) -> bool:
    turn = turn.strip()
    return (re.match(FORMAT_PATTERNS[kind], turn, re.DOTALL) is not None
            and all(turn.count(tag) == 1 for tag in EXACTLY_ONE[kind])
            and not any(tag in turn for tag in FORBIDDEN[kind]))


def reference_format(turns: list[str]) -> int:
    ok = reference_turn_ok
    if len(turns) == 1:
        return int(ok(turns[0], "answer"))
    if len(turns) == 2:
        return int((ok(turns[0], "image_search") or ok(turns[0], "text_search")) and ok(turns[1], "answer"))
    if len(turns) == 3:
        return int(ok(turns[0], "image_search") and ok(turns[1], "text_search") and ok(turns[2], "answer"))
    return 0


def reference_search_count(turns: list[str]) -> int:
    counted = turns if len(turns) == 1 else turns[:-1]
    return sum(("<search><img></search>" in t) + ("<text_search>" in t and "</text_search>" in t) for t in counted)


PIECES = st.sampled_from([
    "<reason>", "</reason>", "<answer>", "</answer>", "<search>", "</search>", "<img>", "<search><img></search>",
    "<text_search>", "</text_search>", " ", "\n", "\t", "a", "Paris", "x y",
])
TURNS = st.lists(st.one_of(PIECES, st.text(max_size=3)), max_size=12).map("".join)
# Turns that end near an action, so triggers and their edge cases (trailing whitespace) come up often.
ENDING_TURNS = st.tuples(TURNS, st.sampled_from(["<search><img></search>", "</text_search>", "</answer>", ""]),
                         st.sampled_from(["", " ", "\n", "\n\n", "\t", " \n"])).map("".join)


@settings(max_examples=800, deadline=None)
@given(st.one_of(TURNS, ENDING_TURNS))
def test_official_turn_functions_match_the_reference(turn):
    rules = resolve_rules("mmsearch_r1")
    action = rules.parse_action(turn)
    trigger, query = reference_trigger(turn)
    assert (action.kind if action.is_search else "end") == trigger
    assert action.query == query
    assert action.answer == reference_answer(turn)
    for kind in FORMAT_PATTERNS:
        assert grammar.turn_is_well_formed(turn, kind) == reference_turn_ok(turn, kind), kind


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(TURNS, st.sampled_from([IMAGE, ANSWER, R + "<text_search>q</text_search>"])),
                min_size=1, max_size=4))
def test_official_trajectory_functions_match_the_reference(turns):
    rules = resolve_rules("mmsearch_r1")
    assert rules.format_score(turns) == reference_format(turns)
    assert rules.search_count(turns, 0) == reference_search_count(turns)


@settings(max_examples=300, deadline=None)
@given(st.lists(PIECES, max_size=10).map("".join), st.sampled_from(["<answer>", "<text_search>"]),
       st.sampled_from(["</answer>", "</text_search>"]), st.booleans())
def test_last_lazy_match_equals_finditer(text, open_tag, close_tag, single_line):
    flags = 0 if single_line else re.DOTALL
    found = re.findall(re.escape(open_tag) + "(.*?)" + re.escape(close_tag), text, flags)
    expected = found[-1] if found else None
    assert grammar.last_lazy_match(text, open_tag, close_tag, single_line=single_line) == expected
