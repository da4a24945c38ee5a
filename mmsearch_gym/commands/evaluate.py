"""`mmsearch-gym eval`: evaluate agents on a suite offline and compare them."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Callable, List, NoReturn, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmsearch_gym.agents.base import Agent
from mmsearch_gym.benchmarks.report import plot_summary, print_table
from mmsearch_gym.benchmarks.runner import RunSpec, cache_identity, evaluate
from mmsearch_gym.data.sample import VQASample
from mmsearch_gym.data.suites import resolve_dataset, suite_cache_bundle
from mmsearch_gym.envs.search_config import resolve_search
from mmsearch_gym.runs import RunDirectoryError
from mmsearch_gym.search.errors import CacheMiss, CorruptCacheEntry
from mmsearch_gym.search.types import SearchBackend

console = Console()


BASELINE_NAMES = ("no-search", "rag", "oracle")
MODEL_AGENTS = ("hf", "openai", "vllm")
CLI_SEARCH_MODES = ("replay", "replay_or_empty", "local")
# Env arguments that have their own flags (--suite, --search/--cache) or mean nothing in a batch run.
_ENV_KEYS_WITH_FLAGS = {"dataset": "--suite", "search": "--search", "cache_path": "--cache", "render_mode": None}


def _baseline(name: str, samples: Sequence[VQASample]) -> Agent:
    from mmsearch_gym.agents.baselines import NoSearchAgent, OracleAgent, RAGWorkflowAgent

    factories: dict[str, Callable[[], Agent]] = {
        "no-search": NoSearchAgent, "rag": RAGWorkflowAgent, "oracle": lambda: OracleAgent(samples)}
    return factories[name]()


def _model_agent(name: str, model: Optional[str], base_url: Optional[str], options: dict[str, Any]) -> Agent:
    """A model agent; its heavy imports (torch, transformers, vllm, httpx) happen only here."""
    if not model:
        fail(f"--agent {name} needs --model ({'a served model name' if name == 'openai' else 'a local checkpoint directory'})")
    if name == "hf":
        from mmsearch_gym.agents.hf import TransformersAgent

        return TransformersAgent(model, **options)
    if name == "vllm":
        from mmsearch_gym.agents.vllm import VLLMAgent

        return VLLMAgent(model, **options)
    if not base_url:
        fail("--agent openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    from mmsearch_gym.agents.openai_compat import OpenAICompatibleAgent

    openai_options = {"max_tokens" if key == "max_new_tokens" else key: value for key, value in options.items()
                      if key in ("temperature", "max_new_tokens", "seed")}
    return OpenAICompatibleAgent(base_url, model, **openai_options)


def _bundle_hash(cache_path: Optional[Path]) -> Optional[str]:
    if cache_path is None or not Path(cache_path).is_file():
        return None
    from mmsearch_gym.cache.bundle import verify_bundle

    return verify_bundle(cache_path).sha256


def fail(message: str) -> NoReturn:
    """Print one error (not wrapped, not read as markup) and exit with status 2."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(2)


def env_setting_names() -> list[str]:
    """The env keyword arguments `--env` may set: the env constructor's, less those with their own flag."""
    from mmsearch_gym.envs.image_search_vqa import ImageSearchVQAEnv

    parameters = inspect.signature(ImageSearchVQAEnv.__init__).parameters
    return sorted(name for name, parameter in parameters.items() if name != "self"
                  and parameter.kind is not inspect.Parameter.VAR_KEYWORD and name not in _ENV_KEYS_WITH_FLAGS)


def parse_env_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as env kwargs (VALUE read as JSON, else taken as a string); an unknown key is
    refused here, naming the valid ones, before any env (and its dataset) is built."""
    settings: dict[str, Any] = {}
    valid = env_setting_names()
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            fail(f"--env expects KEY=VALUE, got {pair!r}")
        flag = _ENV_KEYS_WITH_FLAGS.get(key)
        if flag:
            fail(f"--env {key}=… is not an env setting here; use {flag}")
        if key not in valid:
            fail(f"unknown --env key {key!r}; valid keys: {', '.join(valid)}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def _with_text_corpus(image_backend: Any, corpus: Path, index_dir: Optional[Path]) -> Any:
    """Image search from `image_backend` (e.g. strict replay of a bundle), text search live from a local
    BM25 index over a wiki-18 passage file (built on first use)."""
    from mmsearch_gym.search import CombinedSearch

    try:
        from mmsearch_gym.search.wiki import WikiTextSearch, default_index_root
    except ImportError as error:
        raise ValueError(f"--text-corpus: {error}") from None

    where = index_dir or default_index_root(corpus)
    console.print(f"text search: BM25 over {corpus} (index in {where}; built on first use, which streams the file once)")
    return CombinedSearch(image_backend, WikiTextSearch(corpus, index_dir=index_dir))


def run_eval(
    suite: str = typer.Option("synth-mini", help="Suite name, suite directory, or LOADER:PATH (e.g. fvqa:test.parquet)."),
    agents: str = typer.Option("no-search,rag,oracle", help="Comma-separated baseline agents: no-search, rag, oracle."),
    agent: Optional[str] = typer.Option(None, help="A model agent instead of the baselines: hf, openai or vllm."),
    model: Optional[str] = typer.Option(None, help="Model agent: checkpoint directory (hf, vllm) or served model name (openai)."),
    base_url: Optional[str] = typer.Option(None, help="OpenAI-compatible endpoint for --agent openai."),
    max_new_tokens: int = typer.Option(512, min=1, help="Model agent: new tokens per turn."),
    temperature: float = typer.Option(0.0, min=0.0, help="Model agent: 0 is greedy."),
    device: str = typer.Option("auto", help="--agent hf: cpu, cuda, cuda:N or auto."),
    search: str = typer.Option("replay", help="replay (strict), replay_or_empty, or local (live retrieval over --corpus)."),
    cache: Optional[Path] = typer.Option(None, help="Search cache directory or bundle (default: the suite's bundled cache)."),
    corpus: Optional[Path] = typer.Option(None, help="Corpus directory for --search local."),
    text_corpus: Optional[Path] = typer.Option(None, help="wiki-18-format JSONL passages: text search from a local BM25 index over them, image search as --search/--cache say (e.g. an imported MMSearch-R1 bundle)."),
    text_index: Optional[Path] = typer.Option(None, help="Where the --text-corpus index is kept (default: <corpus>.index/ beside it; built on first use)."),
    out: Path = typer.Option(Path("runs/eval"), help="Run directory: one sub-directory per agent."),
    limit: Optional[int] = typer.Option(None, min=1, help="Evaluate only the first N samples."),
    seed: int = typer.Option(0, help="Episode i is reset with seed + i."),
    batch_size: int = typer.Option(1, min=1, help="Episodes played in lockstep (batched agents)."),
    env: List[str] = typer.Option([], help="Env setting KEY=VALUE (JSON value), e.g. max_turns=4."),
    server: Optional[str] = typer.Option(None, help="Play the episodes on a `mmsearch-gym serve` server (ws://host:port) serving the same suite and settings; the run directory is the same as a local run's."),
) -> None:
    """Evaluate agents offline and print the comparison table (writes episodes, metrics, manifest, summary.png)."""
    try:
        samples = resolve_dataset(suite)
    except (ValueError, FileNotFoundError) as error:
        fail(str(error))
    if limit is not None:
        samples = samples[:limit]
    env_kwargs = parse_env_settings(env)
    if search not in CLI_SEARCH_MODES:
        fail(f"unknown --search {search!r}; choose from {', '.join(CLI_SEARCH_MODES)} (record searches with "
             "`mmsearch-gym cache record`)")
    cache_path = cache or suite_cache_bundle(suite)
    if search != "local" and cache_path is None:
        fail(f"--search {search} needs --cache (a recorded search cache directory or bundle file): suite {suite!r} "
             "has no bundled cache; record one with `mmsearch-gym cache record`, or use --search local --corpus DIR")
    backend: SearchBackend
    try:
        if search == "local":
            if corpus is None:
                fail("--search local needs --corpus DIR (a pages.jsonl corpus)")
            from mmsearch_gym.search.local import LocalCorpusBackend

            backend = LocalCorpusBackend(corpus)
            bundle_hash = None
        else:
            backend = resolve_search(search, cache_path)
            bundle_hash = _bundle_hash(cache_path) or cache_identity(backend)  # once, not once per agent
        if text_corpus is not None:
            backend = _with_text_corpus(backend, text_corpus, text_index)
    except ValueError as error:
        fail(str(error))
    if agent is not None and agent not in MODEL_AGENTS:
        fail(f"unknown --agent {agent!r}; choose from {', '.join(MODEL_AGENTS)}")
    names = [agent] if agent else [name.strip() for name in agents.split(",") if name.strip()]
    unknown = [name for name in names if name not in BASELINE_NAMES + MODEL_AGENTS]
    if unknown or not names:
        fail(f"unknown agent(s) {unknown or names}; choose from {', '.join(BASELINE_NAMES)} "
             f"or --agent {'|'.join(MODEL_AGENTS)}")
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    if agent == "hf":
        options["device"] = device
    spec = RunSpec(samples, backend, env_kwargs=env_kwargs, seed=seed, suite_name=suite, cache_bundle_hash=bundle_hash,
                   server=server)
    try:  # bad --env values fail here, once, before any agent is loaded
        spec.make_local_env().close()
    except (ValueError, TypeError) as error:
        fail(f"--env: {error}")
    if server is not None:
        try:  # an unreachable server, or the `serve` extra missing, is one line too
            spec.make_env().close()
        except (ImportError, RuntimeError, ValueError) as error:
            fail(f"--server: {error}")
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        player = (_model_agent(name, model, base_url, options) if name in MODEL_AGENTS
                  else _baseline(name, samples))
        with Progress(TextColumn(f"[bold]{name:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            task = progress.add_task(name, total=len(samples))
            try:
                results[name] = evaluate(player, spec, out / name, batch_size=batch_size,
                                         progress=lambda done, total: progress.update(task, completed=done, total=total))
            except (CacheMiss, CorruptCacheEntry) as error:
                fail(f"{error}\nThe episodes finished so far are kept in {out / name}; the run resumes from there.")
            except RunDirectoryError as error:
                fail(str(error))
    print_table(results, console)
    plot_summary(results, out / "summary.png")
    console.print(f"run directory: {out}  (summary plot: {out / 'summary.png'})")
