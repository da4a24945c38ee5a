"""Strict JSON for submission packages, and the reader's promise never to raise on hostile bytes:
properties checked with hypothesis."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsearch_gym.benchmarks.package_json import canonical, parse_json, text_problem
from mmsearch_gym.benchmarks.submission import SubmissionError, read_submission
from mmsearch_gym.benchmarks.validate import validate_submission
from test_submission import _package

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20)


@given(JSON)
def test_valid_json_round_trips_through_its_canonical_form(value):
    assert canonical(parse_json(canonical(value).encode("utf-8"), "x")) == canonical(value)
    assert parse_json(json.dumps(value, indent=1).encode("utf-8"), "x") == value


@given(st.dictionaries(TEXT, JSON, min_size=1, max_size=4), st.data())
def test_a_repeated_key_anywhere_is_refused(document, data):
    key = data.draw(st.sampled_from(sorted(document)))
    text = json.dumps(document)
    forged = "{" + json.dumps(key) + ": " + json.dumps(data.draw(JSON)) + ", " + text[1:]
    nested = json.dumps({"outer": [1, {"x": 0}]}).replace('{"x": 0}', forged)
    for where in (forged, nested):
        with pytest.raises(ValueError, match=r"^doc is not valid JSON: duplicate key"):
            parse_json(where.encode("utf-8"), "doc")


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_a_value_error_naming_where(data):
    try:
        parse_json(data, "blob")
    except ValueError as error:
        assert str(error).startswith("blob ")


@pytest.mark.parametrize("text, problem", [
    ("NaN", "NaN is not a JSON number"), ("[1e400]", "the number 1e400 is out of range"),
    ('"\\ud800"', "holds the lone surrogate '\\ud800'"), ('{"\\udfff": 1}', "holds the lone surrogate"),
    ('"\\ud83d\\ude00"', None),  # a surrogate pair is one character: fine
])
def test_non_json_numbers_and_lone_surrogates(text, problem):
    if problem is None:
        assert parse_json(text.encode(), "x") == "\U0001F600"
        return
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_json(text.encode(), "x")
    assert parse_json(b'"\\ud800"', "x", allow_surrogates=True) == "\ud800"
    assert text_problem(["ok", {"k": "\ud800"}]) is not None and text_problem(["ok"]) is None


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, object]:
    folder = tmp_path_factory.mktemp("honest")
    package, pinned = _package(folder)
    return package.read_bytes(), pinned


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4))
def test_validate_never_raises_on_a_damaged_package(honest, tmp_path_factory, flips):
    data, pinned = honest
    damaged = bytearray(data)
    for at, value in flips:
        damaged[at % len(damaged)] = value
    path = Path(tmp_path_factory.mktemp("damaged")) / "damaged.zip"
    path.write_bytes(bytes(damaged))
    try:
        read_submission(path)
    except SubmissionError as error:
        assert error.reasons and all(isinstance(reason, str) and reason for reason in error.reasons)
    report = validate_submission(path, pinned)
    assert report.accepted == (not report.reasons)
