"""`mmsearch-gym submit`, `mmsearch-gym validate` and `mmsearch-gym leaderboard build`.

Why commands: submitting a run and hosting a leaderboard are done by hand, outside Python. The
leaderboard host pins one suite and one cache bundle (`--suite`, `--cache`, optionally their hashes
and env settings); every package is re-played against them. Exit status of `validate`: 0 accepted,
1 rejected, 2 when the pinned suite itself cannot be loaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, NoReturn, Optional

import typer

from mmsearch_gym.benchmarks.leaderboard import DEFAULT_PRICE_PER_1K, build_leaderboard
from mmsearch_gym.benchmarks.pinned import PinnedSuite
from mmsearch_gym.benchmarks.submission import SubmissionError, pack_submission, parse_json
from mmsearch_gym.benchmarks.validate import validate_submission

leaderboard_app = typer.Typer(help="Build the static leaderboard site from submission packages.",
                              no_args_is_help=True)

_SUITE_HELP = "Pinned suite: a registered suite name or a suite directory."
_CACHE_HELP = "Pinned search cache bundle file (replayed strictly)."
_ENV_HELP = "Pinned env setting KEY=VALUE (VALUE read as JSON when it parses), repeatable."


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _parse_env(pairs: List[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            _fail(f"--env expects KEY=VALUE, got {pair!r}", 2)
        try:
            settings[key.strip()] = json.loads(raw)
        except ValueError:
            settings[key.strip()] = raw
    return settings


def _pinned(suite: str, cache: Path, suite_hash: Optional[str], cache_hash: Optional[str],
            env: List[str]) -> PinnedSuite:
    try:
        return PinnedSuite.from_files(suite, cache, suite_hash=suite_hash, cache_bundle_hash=cache_hash,
                                      env_kwargs=_parse_env(env))
    except (ValueError, OSError) as error:
        _fail(f"cannot load the pinned suite: {error}", 2)


def _read_card(card_file: Optional[Path]) -> dict[str, Any]:
    if card_file is None:
        return {}
    try:
        card = parse_json(card_file.read_bytes(), f"agent card {str(card_file)!r}")
    except OSError as error:
        _fail(f"cannot read agent card {str(card_file)!r}: {error.strerror or error}")
    except ValueError as error:
        _fail(str(error))
    if not isinstance(card, dict):
        _fail(f"agent card {str(card_file)!r} must hold a JSON object, got {type(card).__name__}")
    return card


def submit_command(
    run_dir: Path = typer.Argument(..., help="A finished evaluate() run directory."),
    output: Path = typer.Option(..., "--output", "-o", help="Submission zip to write."),
    card: Optional[Path] = typer.Option(None, "--card", help="Agent card JSON file (fields below override it)."),
    name: Optional[str] = typer.Option(None, help="Row label on the leaderboard."),
    model: Optional[str] = typer.Option(None, help="Model name."),
    size: Optional[str] = typer.Option(None, help="Model size, e.g. 7B."),
    search_budget: Optional[int] = typer.Option(None, "--search-budget", help="Most searches per episode."),
    contact: Optional[str] = typer.Option(None, help="E-mail address or http(s) URL."),
) -> None:
    """Pack a run directory and an agent card into one deterministic submission zip."""
    agent_card = _read_card(card)
    for key, value in (("name", name), ("model", model), ("size", size), ("search_budget", search_budget),
                       ("contact", contact)):
        if value is not None:
            agent_card[key] = value
    try:
        path = pack_submission(run_dir, output, agent_card)
    except SubmissionError as error:
        for reason in error.reasons:
            typer.echo(f"error: {reason}", err=True)
        raise typer.Exit(1) from None
    except OSError as error:
        _fail(str(error))
    typer.echo(f"wrote {path}")


def validate_command(
    submission: Path = typer.Argument(..., help="Submission zip."),
    suite: str = typer.Option(..., "--suite", help=_SUITE_HELP),
    cache: Path = typer.Option(..., "--cache", help=_CACHE_HELP),
    suite_hash: Optional[str] = typer.Option(None, "--suite-hash", help="Expected suite hash."),
    cache_hash: Optional[str] = typer.Option(None, "--cache-hash", help="Expected cache bundle hash."),
    env: List[str] = typer.Option([], "--env", help=_ENV_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the whole report as JSON."),
) -> None:
    """Re-play a submission against the pinned suite; exit 0 when accepted, 1 when rejected."""
    report = validate_submission(submission, _pinned(suite, cache, suite_hash, cache_hash, env))
    if as_json:
        typer.echo(json.dumps(report.to_dict(), sort_keys=True, indent=2, ensure_ascii=False))
    elif report.accepted:
        metrics = report.metrics or {}
        typer.echo(f"ACCEPTED {submission}: accuracy {metrics.get('accuracy')}, search ratio "
                   f"{metrics.get('search_ratio')}, {metrics.get('episodes')} episodes")
    else:
        typer.echo(f"REJECTED {submission}:")
        for reason in report.reasons:
            typer.echo(f"  - {reason}")
    if not report.accepted:
        raise typer.Exit(1)


def _baselines(pairs: List[str]) -> dict[str, dict[str, Any]]:
    baselines: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip() or not raw:
            _fail(f"--baseline expects NAME=PATH (a run directory or metrics.json), got {pair!r}", 2)
        path = Path(raw)
        file = path / "metrics.json" if path.is_dir() else path
        try:
            metrics = parse_json(file.read_bytes(), repr(str(file)))
        except OSError as error:
            _fail(f"--baseline {name}: cannot read {str(file)!r}: {error.strerror or error}", 2)
        except ValueError as error:
            _fail(f"--baseline {name}: {error}", 2)
        baselines[name.strip()] = metrics
    return baselines


@leaderboard_app.command("build")
def build_command(
    submissions: Path = typer.Argument(..., help="Directory of submission zips."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write index.html and data.json to."),
    suite: str = typer.Option(..., "--suite", help=_SUITE_HELP),
    cache: Path = typer.Option(..., "--cache", help=_CACHE_HELP),
    suite_hash: Optional[str] = typer.Option(None, "--suite-hash", help="Expected suite hash."),
    cache_hash: Optional[str] = typer.Option(None, "--cache-hash", help="Expected cache bundle hash."),
    env: List[str] = typer.Option([], "--env", help=_ENV_HELP),
    baseline: List[str] = typer.Option([], "--baseline", help="Reference row NAME=PATH (run dir or metrics.json)."),
    price_per_1k: float = typer.Option(DEFAULT_PRICE_PER_1K, "--price-per-1k", help="US$ per 1000 search calls."),
    title: str = typer.Option("mmsearch-gym leaderboard", help="Page title."),
) -> None:
    """Validate every package and write the static leaderboard site (no network resources)."""
    pinned = _pinned(suite, cache, suite_hash, cache_hash, env)
    try:
        board = build_leaderboard(submissions, out, _baselines(baseline), suite=pinned, price_per_1k=price_per_1k,
                                  title=title)
    except (ValueError, OSError) as error:
        _fail(str(error), 2)
    accepted = sum(not row.reference for row in board.rows)
    typer.echo(f"{accepted} accepted, {len(board.rejected)} rejected; wrote {board.page}")
    for name, reasons in board.rejected:
        typer.echo(f"  rejected {name}: {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else ""))


__all__ = ["build_command", "leaderboard_app", "submit_command", "validate_command"]
