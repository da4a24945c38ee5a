"""`mmsearch-gym eval`: evaluate agents on a suite offline and compare them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmsearch_gym.agents.base import Agent
from mmsearch_gym.benchmarks.report import plot_summary, print_table
from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suites import resolve_dataset, suite_cache_bundle
from mmsearch_gym.envs.search_config import resolve_search
from mmsearch_gym.search.errors import CacheMiss, CorruptCacheEntry

console = Console()


def _baselines() -> dict[str, Callable[[Sequence[VQASample]], Agent]]:
    from mmsearch_gym.agents.baselines import NoSearchAgent, OracleAgent, RAGWorkflowAgent

    return {"no-search": lambda _: NoSearchAgent(), "rag": lambda _: RAGWorkflowAgent(), "oracle": OracleAgent}


def _bundle_hash(cache_path: Optional[Path]) -> Optional[str]:
    if cache_path is None or not Path(cache_path).is_file():
        return None
    from mmsearch_gym.cache.bundle import verify_bundle

    return verify_bundle(cache_path).sha256


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def run_eval(
    suite: str = typer.Option("synth-mini", help="Suite name, suite directory, or LOADER:PATH (e.g. fvqa:test.parquet)."),
    agents: str = typer.Option("no-search,rag,oracle", help="Comma-separated baseline agents: no-search, rag, oracle."),
    search: str = typer.Option("replay", help="replay (strict), replay_or_empty, or local (live retrieval over --corpus)."),
    cache: Optional[Path] = typer.Option(None, help="Search cache directory or bundle (default: the suite's bundled cache)."),
    corpus: Optional[Path] = typer.Option(None, help="Corpus directory for --search local."),
    out: Path = typer.Option(Path("runs/eval"), help="Run directory: one sub-directory per agent."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N samples."),
    seed: int = typer.Option(0, help="Episode i is reset with seed + i."),
    batch_size: int = typer.Option(1, min=1, help="Episodes played in lockstep (batched agents)."),
    env: List[str] = typer.Option([], help="Env setting KEY=VALUE (JSON value), e.g. max_turns=4."),
) -> None:
    """Evaluate agents offline and print the comparison table (writes episodes, metrics, manifest, summary.png)."""
    try:
        samples = resolve_dataset(suite)
    except (ValueError, FileNotFoundError) as error:
        _fail(str(error))
    if limit is not None:
        samples = samples[:limit]
    env_kwargs: dict[str, Any] = {}
    for pair in env:
        key, separator, value = pair.partition("=")
        if not separator:
            _fail(f"--env expects KEY=VALUE, got {pair!r}")
        try:
            env_kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            env_kwargs[key] = value
    cache_path = cache or suite_cache_bundle(suite)
    try:
        if search == "local":
            if corpus is None:
                _fail("--search local needs --corpus DIR (a pages.jsonl corpus)")
            from mmsearch_gym.search.local import LocalCorpusBackend

            backend = LocalCorpusBackend(corpus)
            bundle_hash = None
        else:
            backend = resolve_search(search, cache_path)
            bundle_hash = _bundle_hash(cache_path)
    except ValueError as error:
        _fail(str(error))
    names = [name.strip() for name in agents.split(",") if name.strip()]
    known = _baselines()
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        _fail(f"unknown agent(s) {unknown or names}; choose from {', '.join(known)}")
    spec = RunSpec(samples, backend, env_kwargs=env_kwargs, seed=seed, suite_name=suite, cache_bundle_hash=bundle_hash)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        agent = known[name](samples)
        with Progress(TextColumn(f"[bold]{name:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            task = progress.add_task(name, total=len(samples))
            try:
                results[name] = evaluate(agent, spec, out / name, batch_size=batch_size,
                                         progress=lambda done, total: progress.update(task, completed=done, total=total))
            except (CacheMiss, CorruptCacheEntry) as error:
                _fail(f"{error}\nThe episodes finished so far are kept in {out / name}; the run resumes from there.")
    print_table(results, console)
    plot_summary(results, out / "summary.png")
    console.print(f"run directory: {out}  (summary plot: {out / 'summary.png'})")
