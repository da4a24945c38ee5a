"""`mmsearch-gym cache record`: run a live search backend over a suite and keep every result.

By default it runs the image search of every sample (what MMSearch-R1 cached); with `--agent` it
plays that agent through the environment and records every search the agent issues. Recording is
resumable for free: searches already in the cache are hits and cost nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmsearch_gym.cache.backend import CachedSearchBackend
from mmsearch_gym.commands.evaluate import BASELINE_NAMES, fail
from mmsearch_gym.data.suites import resolve_dataset
from mmsearch_gym.search.types import QueryImage, SearchBackend

console = Console()


def build_backend(name: str, *, corpus: Optional[Path], serpapi_base_url: Optional[str], reader: str,
                  reader_url: Optional[str], summarizer_url: Optional[str], summarizer_model: Optional[str],
                  price_per_1k: float) -> SearchBackend:
    """A live backend from command-line choices (the API key comes from SERPAPI_API_KEY only)."""
    if name == "local":
        if corpus is None:
            fail("--backend local needs --corpus DIR (a pages.jsonl corpus)")
        from mmsearch_gym.search.local import LocalCorpusBackend

        return LocalCorpusBackend(corpus)
    if name != "serpapi":
        fail(f"unknown --backend {name!r}; use local or serpapi")
    from mmsearch_gym.search.costs import UsageMeter
    from mmsearch_gym.search.reader import JinaReader, LocalExtractor
    from mmsearch_gym.search.serpapi import CombinedSearch, SerpApiImageSearch, SerpApiTextSearch
    from mmsearch_gym.search.summarizer import ChatSummarizer

    meter = UsageMeter(serpapi_price_per_1k_usd=price_per_1k)
    base: dict[str, Any] = {"base_url": serpapi_base_url} if serpapi_base_url else {}
    pipeline: dict[str, Any] = {}
    if reader != "none":
        if not summarizer_model:
            fail("--reader needs --summarizer-model (and --summarizer-url) to summarise pages; or --reader none")
        if reader == "jina":
            pipeline["reader"] = JinaReader(base_url=reader_url) if reader_url else JinaReader()
        else:
            pipeline["reader"] = LocalExtractor()
        pipeline["summarizer"] = (ChatSummarizer(summarizer_model, base_url=summarizer_url) if summarizer_url
                                  else ChatSummarizer(summarizer_model))
    return CombinedSearch(SerpApiImageSearch(require_key=True, meter=meter, **base),
                          SerpApiTextSearch(require_key=True, meter=meter, **base, **pipeline))


def _usage_text(backend: SearchBackend) -> str:
    usage = getattr(backend, "usage", None)
    if usage is None:
        return ""
    report = usage()
    calls = sum(report.get("billable_calls", {}).values())
    cost = report.get("estimated_cost_usd", 0.0)
    return f"calls {calls}  ~${float(cost):.2f}"


def record_command(
    suite: str = typer.Option(..., help="Suite name, suite directory, or LOADER:PATH."),
    out: Path = typer.Option(..., "--out", "-o", help="Search cache directory to record into."),
    backend: str = typer.Option("local", help="local (retrieval over --corpus) or serpapi (SERPAPI_API_KEY)."),
    corpus: Optional[Path] = typer.Option(None, help="Corpus directory for --backend local."),
    agent: Optional[str] = typer.Option(None, help="Record every search this baseline makes: no-search, rag, oracle."),
    top_k: int = typer.Option(5, min=1, help="Results per search."),
    limit: Optional[int] = typer.Option(None, min=1, help="Only the first N samples."),
    serpapi_base_url: Optional[str] = typer.Option(None, help="SerpApi-compatible endpoint (tests, proxies)."),
    reader: str = typer.Option("none", help="Text search page reader: none (Google snippets), jina or local."),
    reader_url: Optional[str] = typer.Option(None, help="JINA-Reader-compatible base URL."),
    summarizer_url: Optional[str] = typer.Option(None, help="OpenAI-compatible base URL for page summaries."),
    summarizer_model: Optional[str] = typer.Option(None, help="Model name for page summaries."),
    price_per_1k: float = typer.Option(15.0, min=0.0, help="Estimated USD per 1000 billable calls."),
) -> None:
    """Record live searches over a suite into a cache (resumable; recorded searches are not repeated)."""
    if agent is not None and agent not in BASELINE_NAMES:  # checked before anything is created
        fail(f"unknown --agent {agent!r}; use one of {', '.join(BASELINE_NAMES)}")
    try:
        samples = resolve_dataset(suite)
        live = build_backend(backend, corpus=corpus, serpapi_base_url=serpapi_base_url, reader=reader,
                             reader_url=reader_url, summarizer_url=summarizer_url,
                             summarizer_model=summarizer_model, price_per_1k=price_per_1k)
        if limit is not None:
            samples = samples[:limit]
        recorder = CachedSearchBackend(live, os.fspath(out), "record")
    except (ValueError, OSError) as error:
        fail(str(error))
    columns = (TextColumn("[bold]recording"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("", total=len(samples))
            if agent is None:
                for done, sample in enumerate(samples, start=1):
                    recorder.image_search(QueryImage(sample.rgb(), url=sample.image_url), top_k)
                    progress.update(task, completed=done, description=_usage_text(live))
            else:
                import tempfile

                from mmsearch_gym.benchmarks.runner import RunSpec, evaluate
                from mmsearch_gym.commands.evaluate import _baseline

                with tempfile.TemporaryDirectory(prefix="mmsearch-record-") as scratch:
                    spec = RunSpec(samples, recorder, env_kwargs={"top_k": top_k})
                    evaluate(_baseline(agent, samples), spec, scratch,
                             progress=lambda done, total: progress.update(task, completed=done,
                                                                          description=_usage_text(live)))
    finally:
        recorder.close()
        closer = getattr(live, "close", None)
        if callable(closer):
            closer()
    stats = recorder.stats.as_dict()
    console.print(f"recorded into {out}: {stats}  {_usage_text(live)}")
