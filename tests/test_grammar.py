"""The `lenient` rule set's grammar (parsing one turn, format of whole trajectories), and the
linear-time guarantee of both rule sets (DESIGN §3). The default rule set's exact MMSearch-R1
semantics are tested in tests/test_rules_official.py."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch_gym.envs import grammar, lenient
from mmsearch_gym.envs.lenient import format_score, parse_action

ANSWER = "<reason>I know it.</reason><answer>Paris</answer>"
IMAGE = "<reason>I need to see what this is.</reason><search><img></search>"
TEXT = "<reason>I need a fact.</reason><text_search>Eiffel Tower height</text_search>"


@pytest.mark.parametrize("text, kind, answer, query", [
    (ANSWER, "answer", "Paris", None),
    (IMAGE, "image_search", None, None),
    (TEXT, "text_search", None, "Eiffel Tower height"),
    ("  <reason>x</reason>\n<answer> Paris </answer>\n", "answer", "Paris", None),
    ("<reason>x</reason><search> <img> </search>", "image_search", None, None),
    ("<reason>x</reason><text_search>  spaced   query </text_search>", "text_search", None, "spaced   query"),
    ("<reason>x</reason><answer>Paris</answer> Hope this helps!", "invalid", "Paris", None),
    ("<answer>Rome</answer><answer>Paris</answer>", "answer", "Paris", None),
    ("no tags at all", "invalid", None, None),
    ("", "invalid", None, None),
    ("<reason>x</reason><text_search>   </text_search>", "invalid", None, None),
    ("<reason>x</reason><search>the tower</search>", "invalid", None, None),
    ("<reason>x</reason><text_search>query", "invalid", None, None),
    ("<answer>Paris</answer><search><img></search>", "image_search", "Paris", None),
    ("</answer>", "invalid", None, None),
])
def test_parse_action_kinds(text, kind, answer, query):
    action = parse_action(text)
    assert action.kind == kind
    assert action.answer == answer
    assert action.query == query
    assert (action.reason is not None) == (kind == "invalid")


def test_search_is_end_anchored():
    action = parse_action("<reason>x</reason><search><img></search> then I will answer")
    assert action.kind == "invalid"


def test_non_string_action_is_invalid_not_an_exception():
    assert parse_action(None).kind == "invalid"  # type: ignore[arg-type]


VALID_TRAJECTORIES = {
    "answer": [ANSWER],
    "image -> answer": [IMAGE, ANSWER],
    "text -> answer": [TEXT, ANSWER],
    "image -> text -> answer": [IMAGE, TEXT, ANSWER],
}


@pytest.mark.parametrize("name", sorted(VALID_TRAJECTORIES))
def test_valid_shapes_score_one(name):
    assert format_score(VALID_TRAJECTORIES[name]) == 1


INVALID_TRAJECTORIES = {
    "trailing text after answer": ["<reason>x</reason><answer>Paris</answer> Hope this helps!"],
    "no reason": ["<answer>Paris</answer>"],
    "two reasons": ["<reason>a</reason><reason>b</reason><answer>Paris</answer>"],
    "reason after action": ["<answer>Paris</answer><reason>x</reason>"],
    "text between reason and action": ["<reason>a</reason> so: <answer>Paris</answer>"],
    "two answers": ["<reason>a</reason><answer>Rome</answer><answer>Paris</answer>"],
    "answer tag in search turn": ["<reason>a</reason><answer>x</answer><search><img></search>", ANSWER],
    "search tag in answer turn": ["<reason>a</reason><text_search>q</text_search><answer>x</answer>"],
    "text before image": [TEXT, IMAGE, ANSWER],
    "two text searches": [TEXT, TEXT, ANSWER],
    "two image searches": [IMAGE, IMAGE, ANSWER],
    "ends with a search": [IMAGE],
    "search without answer": [IMAGE, TEXT],
    "empty trajectory": [],
    "free text": ["I think it is Paris."],
    "unclosed reason": ["<reason>thinking<answer>Paris</answer>"],
    "text before reason": ["Sure! <reason>a</reason><answer>Paris</answer>"],
    "malformed image search": ["<reason>a</reason><search>tower</search>", ANSWER],
}


@pytest.mark.parametrize("name", sorted(INVALID_TRAJECTORIES))
def test_invalid_shapes_score_zero(name):
    assert format_score(INVALID_TRAJECTORIES[name]) == 0


def test_format_score_rejects_a_bare_string():
    with pytest.raises(TypeError):
        format_score(ANSWER)  # type: ignore[arg-type]


TAGS = st.sampled_from(["<reason>", "</reason>", "<answer>", "</answer>", "<search>", "</search>", "<img>",
                        "<text_search>", "</text_search>", " ", "\n"])
TEXTS = st.lists(st.one_of(st.text(max_size=30), TAGS), max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(TEXTS)
def test_parse_never_raises_and_is_consistent(text):
    action = parse_action(text)
    assert action.kind in ("answer", "image_search", "text_search", "invalid")
    if action.kind == "answer":
        assert text.strip().endswith("</answer>")
    if action.kind == "text_search":
        assert action.query and action.query == action.query.strip()
    assert format_score([text]) in (0, 1)


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=50), st.integers(min_value=1_000, max_value=100_000))
def test_parse_is_never_slow_on_long_unicode(chunk, length):
    text = (chunk * (length // len(chunk) + 1))[:length]
    for candidate in (text, "<text_search>" + text + "</text_search>", text + "</answer>",
                      "<answer>" * 1000 + text, "<reason>" + text + "</reason><search>" + text + "</search>"):
        parse_action(candidate)
        format_score([candidate])


def _parse_time(text: str) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        parse_action(text)
        format_score([text])
        best = min(best, time.perf_counter() - start)
    return best


def _official_time(text: str) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        grammar.parse_action(text)
        grammar.format_score([text])
        grammar.search_count([text])
        best = min(best, time.perf_counter() - start)
    return best


ADVERSARIAL_UNITS = ("<text_search>", "<answer>", "</text_search>x", "<search><img>", "<text_search>\n",
                     "<text_search></text_search>", "<answer></answer>", "<reason>")


@pytest.mark.parametrize("timer", [_parse_time, _official_time], ids=["lenient", "mmsearch_r1"])
def test_adversarial_inputs_scale_linearly(timer):
    """Quadratic regexes blow up by 100x between 10k and 100k characters; a linear parser ~10x.
    The bound is loose (noisy machines) but far below quadratic growth."""
    for unit in ADVERSARIAL_UNITS:
        small = timer(unit * (10_000 // len(unit)) + "</text_search>")
        large = timer(unit * (100_000 // len(unit)) + "</text_search>")
        assert large < max(small, 1e-5) * 40, (unit, small, large)


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=50), st.integers(min_value=1_000, max_value=100_000))
def test_official_parse_is_never_slow_on_long_unicode(chunk, length):
    text = (chunk * (length // len(chunk) + 1))[:length]
    for candidate in (text, "<text_search>" + text + "</text_search>", text + "</answer>",
                      "<answer>" * 1000 + text, "<reason>" + text + "</reason><search>" + text + "</search>"):
        grammar.parse_action(candidate)
        grammar.format_score([candidate])


def test_lenient_module_is_the_lenient_rule_set():
    from mmsearch_gym.envs.rules import LENIENT
    assert LENIENT.parse_action is lenient.parse_action and LENIENT.format_score is lenient.format_score
