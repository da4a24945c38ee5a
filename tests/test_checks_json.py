"""`checks.parse_json_object`: the one reader of "a JSON object" from a file line, a reply or a variable."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmsearch_gym.checks import parse_json_object

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=10)


class CustomError(Exception):
    pass


@given(_JSON)
def test_objects_come_back_and_everything_else_is_one_line_error(value):
    text = json.dumps(value)
    if isinstance(value, dict):
        assert parse_json_object(text, "where") == value
    else:
        with pytest.raises(ValueError, match=f"^where: expected a JSON object, got {type(value).__name__}$"):
            parse_json_object(text, "where")


@given(st.binary(max_size=40))
def test_arbitrary_bytes_give_a_dict_or_the_callers_error(data):
    try:
        assert isinstance(parse_json_object(data, "line 3", error=CustomError), dict)
    except CustomError as error:
        assert str(error).startswith("line 3: ") and "\n" not in str(error)


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000, "malformed JSON (nested too deeply)"),  # a RecursionError before
    (b"\xff{}", "malformed JSON ('utf-8' codec"),
    ("", "malformed JSON (Expecting value"),
])
def test_hostile_input_is_a_clear_error(text, message):
    with pytest.raises(ValueError) as caught:
        parse_json_object(text, "f")
    assert str(caught.value).startswith(f"f: {message}")


def test_no_prefix_without_a_place():
    with pytest.raises(ValueError, match="^expected a JSON object, got str$"):
        parse_json_object('"x"', "")
