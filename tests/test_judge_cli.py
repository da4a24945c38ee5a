"""`mmsearch-gym judge RUN_DIR` against a loopback chat-completions server on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("httpx")
pytest.importorskip("tenacity")
pytest.importorskip("diskcache")

from loopback import LoopbackServer, Reply, Request, chat_reply  # noqa: E402

from mmsearch_gym.benchmarks.judge import PROMPT_VERSION  # noqa: E402
from mmsearch_gym.cli import app  # noqa: E402

KEY = "sk-dummy-judge-key"
CHAT = "/v1/chat/completions"
runner = CliRunner()


def invoke(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, " ".join(result.output.split())


def _field(text: str, name: str) -> str:
    match = re.search(rf"^{name}: (.*)$", text, re.M)
    assert match, f"{name!r} missing from the judge prompt"
    return match.group(1).strip()


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def grade(prompt: str) -> bool:
    """The fake judge: yes when the response matches the reference or an acceptable answer."""
    accepted = [_field(prompt, "Reference answer")]
    others = _field(prompt, "Other acceptable answers")
    if others != "(none)":
        accepted += others.split("; ")
    return _norm(_field(prompt, "Response to grade")) in {_norm(a) for a in accepted}


class JudgeServer:
    def __init__(self, server: LoopbackServer) -> None:
        self.server = server
        self.malformed = False
        server.route(CHAT, self.reply)

    def reply(self, request: Request) -> Reply:
        body = request.json()
        user = body["messages"][1]["content"]
        prompt = user[-1]["text"]
        if self.malformed:
            return Reply(body=chat_reply("Yes, that looks right to me."))
        verdict = "yes" if grade(prompt) else "no"
        return Reply(body=chat_reply(json.dumps({"verdict": verdict, "reason": f"graded {verdict}"})))

    @property
    def requests(self) -> list[Request]:
        return [r for r in self.server.requests if r.path == CHAT]

    @property
    def base_url(self) -> str:
        return self.server.url("/v1")


@pytest.fixture()
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JudgeServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with LoopbackServer() as server:
        yield JudgeServer(server)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("judge-run") / "run"
    code, output = invoke("eval", "--suite", "synth-mini", "--limit", 6, "--agents", "oracle,no-search", "--out", run)
    assert code == 0, output
    return run


def _records(agent_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (agent_dir / "episodes.jsonl").read_text().splitlines() if line.strip()]


def test_judge_adds_judged_accuracy_and_caches_verdicts(judge_server: JudgeServer, run_dir: Path) -> None:
    oracle = run_dir / "oracle"
    before = json.loads((oracle / "metrics.json").read_text())
    code, output = invoke("judge", oracle, "--model", "m", "--base-url", judge_server.base_url)
    assert code == 0, output
    assert "judged accuracy 1.000" in output and "0 judge errors" in output

    metrics = json.loads((oracle / "metrics.json").read_text())
    assert metrics["accuracy"] == before["accuracy"] == 1.0
    assert metrics["judged_accuracy"] == 1.0
    assert metrics["judge"] == {"model": "m", "prompt_version": PROMPT_VERSION, "errors": 0}
    exact = lambda m: {k: v for k, v in m.items() if k not in ("judged_accuracy", "judge")}  # noqa: E731
    assert exact(metrics) == exact(before)  # exact-match metrics are left as they were

    requests = judge_server.requests
    assert len(requests) == 6
    for request in requests:
        body = request.json()
        assert body["model"] == "m" and request.headers.get("Authorization") == f"Bearer {KEY}"
        image_part = body["messages"][1]["content"][0]
        assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/")
    judged = json.loads((oracle / "judged.json").read_text())
    assert judged["n"] == 6 and judged["n_correct"] == 6 and judged["judge_model"] == "m"
    assert [v["sample_id"] for v in judged["verdicts"]] == [r["sample_id"] for r in _records(oracle)]
    assert not any(v["cached"] for v in judged["verdicts"])
    assert (run_dir / ".judge-cache").is_dir()

    # re-judging is free: every verdict comes from the cache
    code, output = invoke("judge", oracle, "--model", "m", "--base-url", judge_server.base_url)
    assert code == 0, output
    assert len(judge_server.requests) == 6
    judged = json.loads((oracle / "judged.json").read_text())
    assert all(v["cached"] for v in judged["verdicts"])
    assert json.loads((oracle / "metrics.json").read_text())["judged_accuracy"] == 1.0

    # the no-search run: the judge's verdicts, not exact match, decide judged accuracy
    no_search = run_dir / "no-search"
    code, output = invoke("judge", no_search, "--model", "m", "--base-url", judge_server.base_url)
    assert code == 0, output
    judged = json.loads((no_search / "judged.json").read_text())
    answered = [r for r in _records(no_search) if r["answer"]]
    assert len(judge_server.requests) == 6 + len(answered)
    expected = [grade(r.json()["messages"][1]["content"][-1]["text"]) for r in judge_server.requests[6:]]
    metrics = json.loads((no_search / "metrics.json").read_text())
    assert metrics["judged_accuracy"] == pytest.approx(sum(expected) / 6, abs=1e-6)
    assert judged["n_correct"] == sum(expected)


def test_malformed_verdicts_are_counted_as_judge_errors(judge_server: JudgeServer, run_dir: Path,
                                                        tmp_path: Path) -> None:
    oracle = run_dir / "oracle"
    judge_server.malformed = True
    code, output = invoke("judge", oracle, "--model", "m", "--base-url", judge_server.base_url,
                          "--cache-dir", tmp_path / "fresh-verdicts", "--no-include-image")
    assert code == 0, output
    assert "6 judge errors" in output
    assert len(judge_server.requests) == 12  # each reply retried once with a reminder of the format
    assert all(len(r.json()["messages"][1]["content"]) == 1 for r in judge_server.requests)  # no image sent
    metrics = json.loads((oracle / "metrics.json").read_text())
    assert metrics["judge"]["errors"] == 6 and metrics["judged_accuracy"] == 0.0 and metrics["accuracy"] == 1.0
    judged = json.loads((oracle / "judged.json").read_text())
    assert all("wrong format twice" in v["error"] for v in judged["verdicts"])

    # a failed verdict is not cached: a working judge is asked again
    judge_server.malformed = False
    code, output = invoke("judge", oracle, "--model", "m", "--base-url", judge_server.base_url,
                          "--cache-dir", tmp_path / "fresh-verdicts", "--no-include-image")
    assert code == 0 and len(judge_server.requests) == 18, output
    assert json.loads((oracle / "metrics.json").read_text())["judge"]["errors"] == 0


def test_judge_errors_name_the_problem(judge_server: JudgeServer, run_dir: Path, tmp_path: Path) -> None:
    code, output = invoke("judge", tmp_path / "not-a-run", "--model", "m", "--base-url", judge_server.base_url)
    assert code != 0 and "not a run directory" in output and "manifest.json" in output.replace(" ", "")
    code, output = invoke("judge", run_dir / "oracle", "--model", "m", "--base-url", judge_server.base_url,
                          "--suite", "no-such-suite", "--cache-dir", tmp_path / "v")
    assert code != 0 and "unknown dataset 'no-such-suite'" in output
    code, output = invoke("judge", run_dir / "oracle", "--model", "m", "--base-url", "ftp://judge:sk-ftp-SECRET@host/v1",
                          "--cache-dir", tmp_path / "v")
    assert code == 2 and "must be an absolute http(s) URL" in output and "sk-ftp-SECRET" not in output
    assert judge_server.requests == []


# --- secrets (issue: the judge wrote the API key into judged.json) ----------------------------------

SECRET = "sk-judge/SECRET+key=42"  # characters that URL-encoding changes, so every form is checked


def _secret_forms(secret: str, user: str | None = None) -> list[str]:
    import base64
    from urllib.parse import quote, quote_plus

    forms = [secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]]
    if user is not None:  # what HTTP Basic auth sends for user:key@ in the URL
        forms.append(base64.b64encode(f"{user}:{secret}".encode()).decode())
    return forms


def _echo_authorization(request: Request) -> Reply:
    """A broken judge server: HTTP 500 whose body echoes the request's Authorization header."""
    return Reply(500, {"error": {"message": "internal error", "request_headers": {
        "Authorization": request.headers.get("Authorization")}}})


def _assert_nowhere(forms: list[str], *roots: Path, output: str = "") -> None:
    files = [path for root in roots for path in root.rglob("*") if path.is_file()]
    assert files
    for form in forms:
        assert form not in output
        for path in files:
            assert form.encode() not in path.read_bytes(), f"{form!r} written to {path}"


@pytest.mark.parametrize("credential", ["env", "userinfo"])
def test_judge_never_writes_the_key(judge_server: JudgeServer, run_dir: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, credential: str) -> None:
    from urllib.parse import quote

    judge_server.server.route(CHAT, _echo_authorization)
    base_url = judge_server.base_url
    if credential == "env":
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    else:
        monkeypatch.delenv("OPENAI_API_KEY")
        base_url = base_url.replace("http://", f"http://judge:{quote(SECRET, safe='')}@")
    run = tmp_path / "run"
    shutil.copytree(run_dir / "oracle", run / "oracle")
    code, output = invoke("judge", run / "oracle", "--model", "m", "--base-url", base_url,
                          "--cache-dir", tmp_path / "verdicts", "--max-retries", 1)
    assert code == 0, output
    assert "6 judge errors" in output

    sent = [r.headers.get("Authorization") or "" for r in judge_server.requests]
    assert len(sent) == 12 and all(sent)  # the server saw the credential (2 attempts per answer) ...
    judged = json.loads((run / "oracle" / "judged.json").read_text())
    errors = [v["error"] for v in judged["verdicts"]]
    assert all("HTTP 500" in e and "gave up after 2 attempts" in e and "***" in e for e in errors)
    # ... and it is in no file the judge wrote (judged.json, metrics.json, the verdict cache)
    _assert_nowhere(_secret_forms(SECRET, "judge"), run, tmp_path / "verdicts", output=output)
