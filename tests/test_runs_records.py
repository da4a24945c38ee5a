"""`mmsearch_gym.runs`: the episode records file (read-only reader, fsynced appender) and the manifest's
resume rule. Every damaged file gets one line naming the file, the line and the remedy."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch_gym.runs import (
    RecordsAppender, RecordsError, RecordsFile, RunMismatch, check_resume, encode_record, parse_records,
    resume_mismatch, write_json_atomic,
)

# Any text an agent may produce, lone surrogates included (`st.characters` never draws them).
texts = st.text(alphabet=st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=20)
records_lists = st.lists(st.fixed_dictionaries({"answer": texts, "actions": st.lists(texts, max_size=3),
                                                "reward": st.floats(0, 1)}), max_size=6)


def _write(path, *lines: bytes) -> None:
    path.write_bytes(b"".join(lines))


def test_a_lone_surrogate_is_written_and_reads_back(tmp_path):
    path = tmp_path / "episodes.jsonl"
    RecordsAppender(path).append({"index": 0, "actions": ["<answer>\ud800</answer>"], "answer": "é\udfff"})
    assert RecordsFile(path).records[0]["actions"] == ["<answer>\ud800</answer>"]
    assert RecordsFile(path).records[0]["answer"] == "é\udfff"
    assert "é".encode() in path.read_bytes()  # well-formed text is still written as UTF-8, not escaped


def test_write_json_atomic_takes_surrogates_and_leaves_no_temporary_file(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"name": "\ud800"})
    assert json.loads((tmp_path / "m.json").read_bytes()) == {"name": "\ud800"}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


@settings(max_examples=60, deadline=None)
@given(records_lists)
def test_records_round_trip(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("r") / "episodes.jsonl"
    appender = RecordsAppender(path)
    for index, record in enumerate(records):
        appender.append({**record, "index": index})
    expected = [{**record, "index": i} for i, record in enumerate(records)]
    # JSON's own rule: a high surrogate escape followed by a low one is one character (U+10000 and up).
    assert RecordsFile(path).ordered() == json.loads(json.dumps(expected))


@settings(max_examples=60, deadline=None)
@given(records_lists.filter(bool), st.data())
def test_a_kill_at_any_byte_leaves_a_readable_prefix(records, data):
    """Cutting the file anywhere (a SIGKILL mid-write) never makes it unreadable: the complete lines
    are the records, the rest is a torn tail."""
    blob = b"".join(encode_record({**record, "index": i}) + b"\n" for i, record in enumerate(records))
    cut = data.draw(st.integers(0, len(blob)))
    parsed, torn = parse_records(blob[:cut])
    complete = blob[:cut].count(b"\n")
    assert sorted(parsed) == list(range(complete))
    assert (torn is None) == (cut == 0 or blob[cut - 1:cut] == b"\n")


def test_reading_never_modifies_the_file(tmp_path):
    path = tmp_path / "episodes.jsonl"
    _write(path, b'{"index":0}\n', b'{"index": 1, "x')
    before = path.read_bytes()
    records = RecordsFile(path)
    assert list(records.records) == [0] and records.torn is not None and records.torn.line == 2
    assert path.read_bytes() == before


def test_a_torn_last_line_that_ends_in_a_newline_is_torn_not_corrupt(tmp_path):
    path = tmp_path / "episodes.jsonl"
    _write(path, b'{"index":0}\n', b'{"index": 1, "x\n')
    assert len(RecordsFile(path)) == 1
    appender = RecordsAppender(path)
    assert len(appender) == 1 and path.read_bytes() == b'{"index":0}\n'
    assert (tmp_path / "episodes.jsonl.torn").read_bytes() == b'{"index": 1, "x\n'
    appender.append({"index": 1})
    assert sorted(RecordsFile(path).records) == [0, 1]


def test_a_trailing_blank_line_is_a_torn_write(tmp_path):
    path = tmp_path / "episodes.jsonl"
    _write(path, b'{"index":0}\n', b"\n")
    assert len(RecordsAppender(path)) == 1 and path.read_bytes() == b'{"index":0}\n'


@pytest.mark.parametrize(("lines", "message"), [
    ((b'{"index":0}\n', b"\n", b'{"index":1}\n'), r"episodes\.jsonl line 2 is blank; .*delete line 2"),
    ((b'{"index":0}\n', b"{oops\n", b'{"index":1}\n'), r"line 2 is not valid JSON; .*delete line 2"),
    ((b'{"index":0}\n', b'{"index":true}\n', b'{"index":1}\n'), r"line 2 is not an episode record"),
    ((b'{"index":0}\n', b'[1]\n'), r"line 2 is not an episode record"),
    ((b'{"index":0}\n', b'{"index":1}\n', b'{"index":0}\n'), r"lines 1 and 3 both record episode 0; delete one"),
])
def test_corruption_before_the_last_line_is_refused_with_a_remedy(tmp_path, lines, message):
    path = tmp_path / "episodes.jsonl"
    _write(path, *lines)
    for reader in (RecordsFile, RecordsAppender):
        with pytest.raises(RecordsError, match=message) as caught:
            reader(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == b"".join(lines)  # refused, never "repaired"


def test_the_appender_refuses_a_second_record_of_an_episode(tmp_path):
    appender = RecordsAppender(tmp_path / "episodes.jsonl")
    appender.append({"index": 3})
    with pytest.raises(ValueError, match="episode 3 is already recorded"):
        appender.append({"index": 3})
    with pytest.raises(ValueError, match="integer 'index'"):
        appender.append({"index": "4"})


def test_resume_names_the_first_differing_field(tmp_path):
    base = {"suite_hash": "s", "search_mode": "replay", "search_backend": "b", "cache_bundle_hash": "c",
            "env": {"max_turns": 3, "top_k": 5}, "seed": 0}
    assert resume_mismatch(base, dict(base)) is None
    assert resume_mismatch(base, {**base, "search_mode": "replay_or_empty"}) == \
        'search_mode was "replay", now "replay_or_empty"'
    assert resume_mismatch(base, {**base, "env": {"max_turns": 4, "top_k": 5}}) == "env.max_turns was 3, now 4"
    old = {key: value for key, value in base.items() if key != "search_mode"}
    assert resume_mismatch(old, base) == 'search_mode was not recorded, now "replay"'
    write_json_atomic(tmp_path / "manifest.json", base)
    check_resume(tmp_path, base)
    with pytest.raises(RunMismatch, match=r"cache_bundle_hash was \"c\", now \"d\".*another --out directory"):
        check_resume(tmp_path, {**base, "cache_bundle_hash": "d"})


def test_a_damaged_manifest_is_named(tmp_path):
    (tmp_path / "manifest.json").write_bytes(b"{not json")
    with pytest.raises(ValueError, match=r"manifest\.json' is not valid JSON"):
        check_resume(tmp_path, {})
