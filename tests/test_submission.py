"""Submission packages and verified re-scoring: honest runs round-trip, every kind of tampering or
hostile zip is rejected for the right reason, and the `submit` / `validate` commands work end to end."""

from __future__ import annotations

import json
import stat
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import typer
from typer.testing import CliRunner

from conftest import build_tiny_world
from mmsearch_gym.agents.baselines import NoSearchAgent, OracleAgent, ScriptedAgent
from mmsearch_gym.benchmarks.metrics import compute_metrics
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
from mmsearch_gym.benchmarks.submission import (
    SUBMISSION_MEMBERS, SubmissionError, agent_card_problems, pack_submission, read_submission,
)
from mmsearch_gym.benchmarks.validate import PinnedSuite, validate_submission

CACHE_HASH = "c" * 64
CARD = {"name": "tester", "model": "scripted-0", "size": "0B", "search_budget": 3, "contact": "team@example.org"}
# rbs-year: image search, text search, right answer; colour-q: a wrong answer (score 0).
SCRIPT = {"rbs-year": ["<reason>a</reason><search><img></search>",
                       "<reason>b</reason><text_search>Red Banner Society founded</text_search>",
                       "<reason>c</reason><answer>1887</answer>"],
          "colour-q": ["<reason>a</reason><answer>red</answer>"]}

Members = dict[str, bytes]


def _spec() -> RunSpec:
    samples, backend = build_tiny_world()
    return RunSpec(samples, backend, cache_bundle_hash=CACHE_HASH)


def _package(tmp_path: Path, agent: Any = None, card: dict[str, Any] | None = None) -> tuple[Path, PinnedSuite]:
    spec = _spec()
    run = tmp_path / "run"
    evaluate(agent or ScriptedAgent(SCRIPT), spec, run)
    return pack_submission(run, tmp_path / "submission.zip", card or CARD), PinnedSuite.from_spec(spec)


def _members(path: Path) -> Members:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path: Path, members: Members | list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    items = list(members.items()) if isinstance(members, dict) else members
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in items:
            archive.writestr(name, data)
    return path


def _records(members: Members) -> list[dict[str, Any]]:
    return [json.loads(line) for line in members["episodes.jsonl"].decode().splitlines()]


def _set_records(members: Members, records: list[dict[str, Any]], *, fix_metrics: bool = False) -> None:
    """Replace the episodes; with `fix_metrics`, also recompute metrics.json as a careful cheater would."""
    members["episodes.jsonl"] = "".join(json.dumps(r) + "\n" for r in records).encode()
    if fix_metrics:
        members["metrics.json"] = json.dumps(compute_metrics(sorted(records, key=lambda r: r["index"]))).encode()


def _set_json(members: Members, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    value = json.loads(members[name])
    edit(value)
    members[name] = json.dumps(value).encode()


def test_honest_submission_round_trips_and_packs_deterministically(tmp_path):
    package, pinned = _package(tmp_path)
    again = pack_submission(tmp_path / "run", tmp_path / "again.zip", CARD)
    assert package.read_bytes() == again.read_bytes()
    with zipfile.ZipFile(package) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == list(SUBMISSION_MEMBERS)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    contents = read_submission(package)
    assert contents.agent_card == CARD and contents.manifest["cache_bundle_hash"] == CACHE_HASH

    report = validate_submission(package, pinned)
    assert report.accepted, report.reasons
    assert report.reasons == []
    assert report.metrics == json.loads((tmp_path / "run/metrics.json").read_text())
    assert report.metrics["accuracy"] == 0.5


def test_batched_run_packs_to_the_same_bytes_and_oracle_round_trips(tmp_path):
    samples, _ = build_tiny_world()
    spec = _spec()
    evaluate(OracleAgent(samples), spec, tmp_path / "a", batch_size=1)
    evaluate(OracleAgent(samples), spec, tmp_path / "b", batch_size=2)
    first = pack_submission(tmp_path / "a", tmp_path / "a.zip", CARD)
    second = pack_submission(tmp_path / "b", tmp_path / "b.zip", CARD)
    assert first.read_bytes() == second.read_bytes()
    resolver_calls = []

    def resolver(manifest):  # a leaderboard hosting several suites picks by manifest
        resolver_calls.append(manifest["suite"])
        return spec

    report = validate_submission(first, resolver)
    assert report.accepted, report.reasons
    assert report.metrics["accuracy"] == 1.0 and resolver_calls == ["custom"]


def test_agent_errors_are_honest_records(tmp_path):
    def flaky(obs, info):
        if info["sample_id"] == "rbs-year":
            raise ConnectionError("model server down")
        return "<reason>x</reason><answer>blue</answer>"

    package, pinned = _package(tmp_path, ScriptedAgent(flaky))
    assert validate_submission(package, pinned).accepted


def test_agent_card_and_run_checks_at_pack_time(tmp_path):
    assert agent_card_problems(CARD) == []
    problems = agent_card_problems({"model": "", "size": -1, "search_budget": "many", "contact": "nobody"})
    assert len(problems) == 4 and "'model'" in problems[0]
    assert any("search_budget" in p and "'many'" in p for p in problems)
    assert agent_card_problems({"model": "m", "size": "7B", "search_budget": 1}) == [
        "agent card field 'contact' is missing"]
    with pytest.raises(SubmissionError, match="'contact' must be an e-mail"):
        _package(tmp_path, card={**CARD, "contact": "call me"})
    with pytest.raises(SubmissionError, match="does not exist"):
        pack_submission(tmp_path / "nowhere", tmp_path / "x.zip", CARD)

    run = tmp_path / "run"
    lines = (run / "episodes.jsonl").read_text().splitlines(keepends=True)
    (run / "episodes.jsonl").write_text(lines[0])
    with pytest.raises(SubmissionError, match=r"incomplete: 1 of 2 episodes are missing \(indices 1\)"):
        pack_submission(run, tmp_path / "x.zip", CARD)
    (run / "episodes.jsonl").write_text("".join(lines))
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "accuracy": 1.0}))
    with pytest.raises(SubmissionError, match="metrics.json .* does not match episodes.jsonl"):
        pack_submission(run, tmp_path / "x.zip", CARD)


def _edit_reward(members: Members) -> None:
    records = _records(members)
    records[1]["reward"] = 1.0
    _set_records(members, records)


def _edit_answer_and_score(members: Members) -> None:
    records = _records(members)
    target = next(r for r in records if r["sample_id"] == "colour-q")
    target.update(answer="blue", score=1.0, reward=1.0)
    _set_records(members, records, fix_metrics=True)


def _edit_manifest(key: str, value: Any) -> Callable[[Members], None]:
    return lambda members: _set_json(members, "manifest.json", lambda manifest: manifest.__setitem__(key, value))


def _drop_episode(members: Members) -> None:
    _set_records(members, [r for r in _records(members) if r["index"] != 1])


def _duplicate_episode(members: Members) -> None:
    records = _records(members)
    _set_records(members, records + [records[0]])


def _unknown_episode(members: Members) -> None:
    records = _records(members)
    _set_records(members, records + [{**records[0], "index": 7}])


def _action_after_answer(members: Members) -> None:
    records = _records(members)
    target = next(r for r in records if r["sample_id"] == "colour-q")
    target["actions"].append("<reason>again</reason><answer>blue</answer>")
    _set_records(members, records)


def _alter_search_result(members: Members) -> None:
    records = _records(members)
    target = next(r for r in records if r["sample_id"] == "rbs-year")
    results = target["messages"][4]["content"][0]
    results["text"] = results["text"].replace("founded in 1887", "founded in 1888")
    _set_records(members, records)


def _edit_searches_made(members: Members) -> None:
    records = _records(members)
    records[0]["searches_made"][0]["items"] = 5
    _set_records(members, records)


def _edit_metrics(members: Members) -> None:
    _set_json(members, "metrics.json", lambda metrics: metrics.__setitem__("accuracy", 1.0))


def _set_member(name: str, data: bytes) -> Callable[[Members], None]:
    return lambda members: members.__setitem__(name, data)


def _torn_line(members: Members) -> None:
    lines = members["episodes.jsonl"].split(b"\n")
    lines[1] = lines[1][:40]
    members["episodes.jsonl"] = b"\n".join(lines)


def _add_member(name: str) -> Callable[[Members], None]:
    return lambda members: members.__setitem__(name, b"surprise")


def _remove_member(name: str) -> Callable[[Members], None]:
    return lambda members: members.pop(name)


def _over_budget_card(members: Members) -> None:
    _set_json(members, "agent_card.json", lambda card: card.__setitem__("search_budget", 1))


TAMPERING = {
    "edited reward": (_edit_reward, "episode 1 (colour-q): field 'reward' is 1.0 but the replay gives 0.1"),
    "edited answer with its score": (_edit_answer_and_score, "episode 1 (colour-q): field 'answer' is \"blue\""),
    "wrong suite hash": (_edit_manifest("suite_hash", "0" * 64), "manifest.json suite_hash is '000"),
    "wrong cache hash": (_edit_manifest("cache_bundle_hash", "d" * 64), "manifest.json cache_bundle_hash is 'ddd"),
    "more searches allowed": (_edit_manifest("env", {"max_turns": 9}), "manifest.json env.max_turns is 9"),
    "missing episode": (_drop_episode, "episodes missing from episodes.jsonl: 1"),
    "duplicated episode": (_duplicate_episode, "episode 0 is duplicated (episodes.jsonl lines 1, 3)"),
    "unknown episode": (_unknown_episode, "episodes.jsonl line 3: unknown episode index 7"),
    "action after the answer": (_action_after_answer,
                                "episode 1 (colour-q): field 'actions' continues after the episode ended at action 1"),
    "altered search result": (_alter_search_result,
                              "episode 0 (rbs-year): field 'messages' differs at [4].content[0].text"),
    "edited searches_made": (_edit_searches_made,
                             "field 'searches_made' differs at [0].items: 5 but the replay gives 2"),
    "edited metrics": (_edit_metrics, "metrics.json accuracy is 1.0 but the replayed episodes give 0.5"),
    "over its search budget": (_over_budget_card, "search_budget is 1, but episode 0 (rbs-year) made 2 searches"),
    "malformed metrics.json": (_set_member("metrics.json", b"{not json"), "metrics.json is not valid JSON"),
    "malformed episode line": (_torn_line, "episodes.jsonl line 2 is not valid JSON"),
    "not UTF-8": (_set_member("manifest.json", b"\xff\xfe{}"), "manifest.json is not UTF-8"),
    "NaN": (_set_member("metrics.json", b'{"accuracy": NaN}'), "NaN is not a JSON number"),
    "deep nesting": (_set_member("metrics.json", b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    "bad agent card": (_set_member("agent_card.json", b'{"model": "m"}'), "agent card field 'size' is missing"),
    "missing member": (_remove_member("agent_card.json"), "missing member(s) agent_card.json"),
    "unexpected member": (_add_member("notes.txt"), "unexpected member 'notes.txt'"),
    "path traversal": (_add_member("../evil"), "member '../evil' has an unsafe path: it escapes its directory (path traversal)"),
    "absolute path": (_add_member("/etc/evil"), "member '/etc/evil' has an unsafe path: it is an absolute path"),
    "zip bomb (declared size)": (_set_member("metrics.json", b" " * (20 * 2**20)),
                                 "member 'metrics.json' declares 20971520 uncompressed bytes (limit 4194304)"),
    "zip bomb (ratio)": (_set_member("episodes.jsonl", b"\n" * (40 * 2**20)),
                         "member 'episodes.jsonl' declares a compression ratio of"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_rejected_for_the_right_reason(tmp_path, case):
    package, pinned = _package(tmp_path)
    tamper, expected = TAMPERING[case]
    members = _members(package)
    tamper(members)
    report = validate_submission(_write(tmp_path / "tampered.zip", members), pinned)
    assert not report.accepted
    assert any(expected in reason for reason in report.reasons), report.reasons


def test_hostile_zip_structures_are_rejected(tmp_path):
    package, pinned = _package(tmp_path)
    members = _members(package)

    link = zipfile.ZipInfo("manifest.json")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    linked = [(name, data) for name, data in members.items() if name != "manifest.json"] + [(link, b"/etc/passwd")]
    report = validate_submission(_write(tmp_path / "link.zip", linked), pinned)
    assert "member 'manifest.json' is a symbolic link" in report.reasons

    crowded = _write(tmp_path / "crowded.zip", {**members, **{f"x{i}": b"" for i in range(20)}})
    assert validate_submission(crowded, pinned).reasons == [
        "crowded.zip declares 24 members in a 1208-byte directory (limit 8 members)"]

    with pytest.warns(UserWarning, match="Duplicate name"):
        duplicated = _write(tmp_path / "dup.zip", list(members.items()) + [("metrics.json", b"{}")])
    assert "member 'metrics.json' appears more than once" in validate_submission(duplicated, pinned).reasons

    (tmp_path / "junk.zip").write_bytes(b"PK not really a zip")
    assert "not a zip file" in validate_submission(tmp_path / "junk.zip", pinned).reasons[0]
    assert "does not exist" in validate_submission(tmp_path / "absent.zip", pinned).reasons[0]


def test_a_member_that_lies_about_its_size_is_read_through_a_bounded_stream(tmp_path):
    package, pinned = _package(tmp_path)
    members = _members(package)
    members["metrics.json"] = json.dumps(json.loads(members["metrics.json"])).encode() + b" " * 3_000_000
    data = bytearray(_write(tmp_path / "big.zip", members).read_bytes())
    claimed = 1000  # patch the declared uncompressed size of metrics.json in both headers
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at:name_at + 12] == b"metrics.json":
                data[at + offset:at + offset + 4] = struct.pack("<I", claimed)
            start = at + 4
    lying = tmp_path / "lying.zip"
    lying.write_bytes(bytes(data))
    report = validate_submission(lying, pinned)
    assert not report.accepted
    assert any("member 'metrics.json' cannot be read" in reason for reason in report.reasons), report.reasons


def test_a_run_of_another_suite_is_rejected(tmp_path):
    package, _ = _package(tmp_path, NoSearchAgent())
    samples, backend = build_tiny_world()
    other = PinnedSuite.from_spec(RunSpec(list(reversed(samples)), backend, cache_bundle_hash=CACHE_HASH))
    report = validate_submission(package, other)
    assert len(report.reasons) == 1 and "suite_hash" in report.reasons[0] and report.metrics is None


# -- command line -----------------------------------------------------------------------------------------

def _cli() -> typer.Typer:
    from mmsearch_gym.commands.leaderboard import leaderboard_app, submit_command, validate_command

    app = typer.Typer()
    app.command("submit")(submit_command)
    app.command("validate")(validate_command)
    app.add_typer(leaderboard_app, name="leaderboard")
    return app


def _pinned_files(tmp_path: Path) -> tuple[Path, Path, RunSpec]:
    """The tiny world as a suite directory and a recorded, exported cache bundle; the replay spec."""
    from mmsearch_gym.cache.backend import CachedSearchBackend
    from mmsearch_gym.cache.bundle import export_bundle
    from mmsearch_gym.data.suite_io import read_suite, write_suite

    samples, backend = build_tiny_world()
    write_suite(samples, tmp_path / "suite")
    recorder = CachedSearchBackend(backend, tmp_path / "cache", mode="record")
    evaluate(ScriptedAgent(SCRIPT), RunSpec(samples, recorder), tmp_path / "recording")
    recorder.close()
    info = export_bundle(tmp_path / "cache", tmp_path / "cache.bundle")
    replay = CachedSearchBackend.replay(tmp_path / "cache.bundle")
    return tmp_path / "suite", tmp_path / "cache.bundle", RunSpec(read_suite(tmp_path / "suite"), replay,
                                                                  cache_bundle_hash=info.sha256)


def test_submit_and_validate_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("MMSEARCH_GYM_HOME", str(tmp_path / "home"))
    suite, bundle, spec = _pinned_files(tmp_path)
    evaluate(ScriptedAgent(SCRIPT), spec, tmp_path / "run")
    (tmp_path / "card.json").write_text(json.dumps({**CARD, "model": "from-file"}))
    runner = CliRunner()
    app = _cli()

    result = runner.invoke(app, ["submit", str(tmp_path / "run"), "-o", str(tmp_path / "sub.zip"),
                                 "--card", str(tmp_path / "card.json"), "--size", "7B"])
    assert result.exit_code == 0, result.output
    assert read_submission(tmp_path / "sub.zip").agent_card == {**CARD, "model": "from-file", "size": "7B"}

    pins = ["--suite", str(suite), "--cache", str(bundle)]
    result = runner.invoke(app, ["validate", str(tmp_path / "sub.zip"), *pins])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ACCEPTED") and "accuracy 0.5" in result.output

    result = runner.invoke(app, ["validate", str(tmp_path / "sub.zip"), *pins, "--env", "max_turns=4", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["accepted"] is False and report["reasons"] == [
        "manifest.json env.max_turns is 3 but the pinned suite uses 4"]

    result = runner.invoke(app, ["validate", str(tmp_path / "sub.zip"), *pins, "--suite-hash", "e" * 64])
    assert result.exit_code == 2 and "but " + "e" * 64 + " is pinned" in result.output

    result = runner.invoke(app, ["submit", str(tmp_path / "run"), "-o", str(tmp_path / "bad.zip"),
                                 "--model", "m", "--size", "1B", "--search-budget", "-1", "--contact", "a@b.c"])
    assert result.exit_code == 1
    assert "'search_budget' must be an integer >= 0 (searches per episode), got -1" in result.output
    assert not (tmp_path / "bad.zip").exists()
