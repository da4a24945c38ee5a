"""Hostile packages found by adversarial testing: each is a rejection with a reason, never an exception,
and one of them in `submissions/` never stops `leaderboard build` from writing the site for the rest."""

from __future__ import annotations

import json
import zipfile

import pytest
from typer.testing import CliRunner

from mmsearch_gym.agents.baselines import ScriptedAgent
from mmsearch_gym.benchmarks import leaderboard as leaderboard_module
from mmsearch_gym.benchmarks.leaderboard import build_leaderboard
from mmsearch_gym.benchmarks.runner import evaluate
from mmsearch_gym.benchmarks.submission import SubmissionError, pack_submission, parse_json
from mmsearch_gym.benchmarks.validate import PinnedSuite, validate_submission
from test_submission import (
    CARD, SCRIPT, Members, _cli, _members, _package, _pinned_files, _records, _set_records, _write,
)


def _edit_card(members: Members, **fields: object) -> None:
    card = json.loads(members["agent_card.json"])
    card.update(fields)
    members["agent_card.json"] = json.dumps(card).encode()  # ensure_ascii: a lone surrogate stays "\ud800"


def _edit_action(members: Members, episode: int, position: int, action: str) -> None:
    records = _records(members)
    target = next(record for record in records if record["index"] == episode)
    target["actions"][position] = action
    _set_records(members, records)


def _rejected_because(report, *needles: str) -> None:
    assert not report.accepted
    for needle in needles:
        assert any(needle in reason for reason in report.reasons), (needle, report.reasons)


# -- content that used to raise -----------------------------------------------------------------------------

def test_a_huge_card_size_is_a_rejection_not_an_overflow(tmp_path):
    package, pinned = _package(tmp_path)
    members = _members(package)
    _edit_card(members, size=10**400)
    report = validate_submission(_write(tmp_path / "huge.zip", members), pinned)
    _rejected_because(report, "agent card field 'size'")
    members = _members(package)
    _edit_card(members, size=1e300 * 10)  # json.dumps writes Infinity: a non-JSON constant
    assert not validate_submission(_write(tmp_path / "inf.zip", members), pinned).accepted


def test_a_lone_surrogate_in_an_edited_action_is_a_rejection_that_can_be_printed(tmp_path):
    package, pinned = _package(tmp_path)
    members = _members(package)
    _edit_action(members, 1, 0, "<reason>x\ud800</reason><answer>blue</answer>")
    report = validate_submission(_write(tmp_path / "surrogate.zip", members), pinned)
    _rejected_because(report, "episode 1 (colour-q): field 'messages' differs at [1].content[0].text", "x\\ud800")
    "\n".join(report.reasons).encode("utf-8")  # printable: the surrogate is shown as its escape
    json.dumps(report.to_dict(), ensure_ascii=False).encode("utf-8")


def test_an_honest_run_whose_agent_emits_a_lone_surrogate_packs_and_is_accepted(tmp_path):
    script = {**SCRIPT, "colour-q": ["<reason>odd \ud800 text</reason><answer>blue</answer>"]}
    package, pinned = _package(tmp_path, ScriptedAgent(script))
    report = validate_submission(package, pinned)
    assert report.accepted, report.reasons
    assert report.metrics["accuracy"] == 1.0


def test_a_lone_surrogate_in_the_card_name_is_rejected_by_validate(tmp_path):
    package, pinned = _package(tmp_path)
    members = _members(package)
    _edit_card(members, name="evil\ud800")
    report = validate_submission(_write(tmp_path / "name.zip", members), pinned)
    _rejected_because(report, "agent_card.json", "lone surrogate")


def test_a_search_that_was_never_recorded_is_a_rejection(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSEARCH_GYM_HOME", str(tmp_path / "home"))
    suite, bundle, spec = _pinned_files(tmp_path)
    evaluate(ScriptedAgent(SCRIPT), spec, tmp_path / "run")
    package = pack_submission(tmp_path / "run", tmp_path / "honest.zip", CARD)
    pinned = PinnedSuite.from_files(suite, bundle)
    assert validate_submission(package, pinned).accepted
    members = _members(package)
    _edit_action(members, 0, 1, "<reason>b</reason><text_search>a query nobody recorded</text_search>")
    report = validate_submission(_write(tmp_path / "miss.zip", members), pinned)
    _rejected_because(report, "episode 0 (rbs-year): action 2 makes a search that the pinned cache never recorded",
                      '(a text search for "a query nobody recorded")')
    folder = tmp_path / "submissions"
    folder.mkdir()
    for path in (package, tmp_path / "miss.zip"):
        (folder / path.name).write_bytes(path.read_bytes())
    board = build_leaderboard(folder, tmp_path / "site", suite=pinned)
    assert [row.submission for row in board.rows] == ["honest.zip"] and board.rejected[0][0] == "miss.zip"


def test_any_unexpected_error_becomes_a_rejection_naming_its_type(tmp_path):
    package, pinned = _package(tmp_path)

    def resolver(manifest):
        raise ZeroDivisionError("resolver bug")

    report = validate_submission(package, resolver)
    _rejected_because(report, "ZeroDivisionError: resolver bug")
    assert validate_submission(package, pinned).accepted


# -- leaderboard build with hostile packages ----------------------------------------------------------------

def test_build_writes_the_site_from_the_rest_and_leaves_no_temp_file(tmp_path):
    package, pinned = _package(tmp_path)
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "honest.zip").write_bytes(package.read_bytes())
    for name, edit in (("huge", lambda m: _edit_card(m, size=10**400)),
                       ("surrogate-action", lambda m: _edit_action(m, 1, 0, "<reason>\udfff</reason>")),
                       ("surrogate-name", lambda m: _edit_card(m, name="\ud800"))):
        members = _members(package)
        edit(members)
        _write(folder / f"{name}.zip", members)
    board = build_leaderboard(folder, tmp_path / "site", suite=pinned)
    data = json.loads(board.data.read_text(encoding="utf-8"))
    assert [row["submission"] for row in data["rows"]] == ["honest.zip"]
    assert sorted(entry["submission"] for entry in data["rejected"]) == [
        "huge.zip", "surrogate-action.zip", "surrogate-name.zip"]
    assert sorted(path.name for path in (tmp_path / "site").iterdir()) == ["data.json", "index.html"]


def test_a_failing_site_write_leaves_the_old_site_and_no_temp_file(tmp_path, monkeypatch):
    package, pinned = _package(tmp_path)
    folder = tmp_path / "submissions"
    folder.mkdir()
    (folder / "honest.zip").write_bytes(package.read_bytes())
    site = tmp_path / "site"
    build_leaderboard(folder, site, suite=pinned)
    before = {path.name: path.read_bytes() for path in site.iterdir()}

    def broken(*args, **kwargs):
        raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(leaderboard_module, "render_page", broken)
    with pytest.raises(UnicodeEncodeError):
        build_leaderboard(folder, site, {"other": json.loads(package.parent.joinpath("run/metrics.json").read_text())},
                          suite=pinned)
    assert {path.name: path.read_bytes() for path in site.iterdir()} == before


# -- duplicate JSON keys ----------------------------------------------------------------------------------

def test_duplicate_json_keys_are_rejected_everywhere(tmp_path):
    package, pinned = _package(tmp_path)
    members = _members(package)
    manifest = members["manifest.json"].decode()
    forged = manifest.replace("{", '{\n  "suite_hash": "forged",', 1)
    members["manifest.json"] = forged.encode()
    assert json.loads(forged)["suite_hash"] != "forged"  # the real one, last, wins in plain json
    report = validate_submission(_write(tmp_path / "forged.zip", members), pinned)
    _rejected_because(report, "manifest.json", "duplicate key 'suite_hash'")

    members = _members(package)
    lines = members["episodes.jsonl"].split(b"\n")
    lines[0] = b'{"reward": 7,' + lines[0][1:]
    members["episodes.jsonl"] = b"\n".join(lines)
    report = validate_submission(_write(tmp_path / "episode.zip", members), pinned)
    _rejected_because(report, "episodes.jsonl line 1", "duplicate key 'reward'")

    with pytest.raises(ValueError, match=r"x is not valid JSON: duplicate key 'a'"):
        parse_json(b'{"b": {"a": 1, "a": 2}}', "x")

    (tmp_path / "card.json").write_text('{"model": "m", "size": "1B", "search_budget": 1, "contact": "a@b.c", '
                                        '"model": "other"}')
    result = CliRunner().invoke(_cli(), ["submit", str(tmp_path / "run"), "-o", str(tmp_path / "y.zip"),
                                         "--card", str(tmp_path / "card.json")])
    assert result.exit_code == 1 and "duplicate key 'model'" in result.output and not (tmp_path / "y.zip").exists()

    run = tmp_path / "run"
    (run / "manifest.json").write_text((run / "manifest.json").read_text().replace("{", '{"seed": 5,', 1))
    with pytest.raises(SubmissionError, match="duplicate key 'seed'"):
        pack_submission(run, tmp_path / "x.zip", CARD)


# -- zips that are two zips -------------------------------------------------------------------------------

def test_concatenated_or_padded_zips_are_rejected(tmp_path):
    package, pinned = _package(tmp_path)
    honest = package.read_bytes()
    members = _members(package)
    _set_records(members, [{**record, "reward": 1.0} for record in _records(members)])
    tampered = _write(tmp_path / "tampered.zip", members).read_bytes()
    for name, data in (("tampered-then-honest", tampered + honest), ("honest-then-tampered", honest + tampered),
                       ("prefix", b"MZ" + b"\0" * 100 + honest), ("suffix", honest + b"trailing bytes"),
                       ("gap", _with_gap(honest))):
        path = tmp_path / f"{name}.zip"
        path.write_bytes(data)
        report = validate_submission(path, pinned)
        assert not report.accepted, name
        assert any("bytes" in reason for reason in report.reasons), (name, report.reasons)
    assert validate_submission(package, pinned).accepted


def _with_gap(honest: bytes) -> bytes:
    """The same archive with 16 junk bytes between the last member and the central directory (offsets fixed)."""
    end = honest.rfind(b"PK\x05\x06")
    directory_at = int.from_bytes(honest[end + 16:end + 20], "little")
    patched = bytearray(honest[:directory_at] + b"\0" * 16 + honest[directory_at:])
    patched[end + 16 + 16:end + 20 + 16] = (directory_at + 16).to_bytes(4, "little")
    with zipfile.ZipFile(__import__("io").BytesIO(bytes(patched))) as archive:
        assert archive.testzip() is None  # zipfile itself reads it happily
    return bytes(patched)


# -- the pinned cache's extracted copy --------------------------------------------------------------------

def test_an_edited_extracted_bundle_copy_is_refused(tmp_path, monkeypatch):
    from mmsearch_gym.cache.opening import extracted_copy_dir
    from mmsearch_gym.cache.store import SearchCache

    monkeypatch.setenv("MMSEARCH_GYM_HOME", str(tmp_path / "home"))
    suite, bundle, spec = _pinned_files(tmp_path)
    evaluate(ScriptedAgent(SCRIPT), spec, tmp_path / "run")
    package = pack_submission(tmp_path / "run", tmp_path / "honest.zip", CARD)
    assert validate_submission(package, PinnedSuite.from_files(suite, bundle)).accepted
    spec.search.close()

    copy = extracted_copy_dir(bundle)
    with SearchCache(copy) as cache:  # a user (or an attacker) edits the copy the replays read
        edited = [key for key in cache.keys() if b"1887" in (cache.read_payload(key) or b"")]
        assert edited
        cache.write_payload(edited[0], cache.read_payload(edited[0]).replace(b"1887", b"1888"))
    with pytest.raises(ValueError, match="changed after extraction"):
        PinnedSuite.from_files(suite, bundle)
    result = CliRunner().invoke(_cli(), ["validate", str(package), "--suite", str(suite), "--cache", str(bundle)])
    assert result.exit_code == 2 and "changed after extraction" in result.output


def test_a_bad_limit_is_the_hosts_error_raised_at_once_not_a_rejection_of_every_package():
    from mmsearch_gym.benchmarks.submission import SubmissionLimits

    with pytest.raises(ValueError, match="max_members must be an int >= 0, got -1"):
        SubmissionLimits(max_members=-1)
    with pytest.raises(ValueError, match="max_line_reasons must be an int >= 1, got 0"):
        SubmissionLimits(max_line_reasons=0)
    with pytest.raises(TypeError, match="suite must be a PinnedSuite"):
        validate_submission("x.zip", "synth-mini")  # type: ignore[arg-type]
