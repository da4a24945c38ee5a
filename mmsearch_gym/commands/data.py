"""`mmsearch-gym data ...`: convert benchmark files to our suite format; generate synthetic suites."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="Convert benchmarks to suite directories; generate synthetic suites.", no_args_is_help=True)
console = Console()


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@app.command("convert")
def convert(source: str = typer.Argument(..., help="LOADER:PATH, e.g. fvqa:fvqa_test.parquet, or a suite name."),
            out: Path = typer.Argument(..., help="Suite directory to write."),
            overwrite: bool = typer.Option(False, help="Replace an existing directory.")) -> None:
    """Write a benchmark as a suite directory (samples.jsonl + images + hashed manifest)."""
    from mmsearch_gym.data.suite_io import write_suite
    from mmsearch_gym.data.suites import resolve_dataset

    try:
        samples = resolve_dataset(source)
        digest = write_suite(samples, out, name=source, overwrite=overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        _fail(str(error))
    console.print(f"wrote {len(samples)} samples to {out} (suite hash {digest})")


@app.command("synth")
def synth(out: Path = typer.Argument(..., help="Directory for test/, train/ and cache.zip (and corpus/)."),
          seed: int = typer.Option(0), n_test: int = typer.Option(300, min=1), n_train: int = typer.Option(1000, min=1),
          n_entities_test: int = typer.Option(120, min=1), n_entities_train: int = typer.Option(360, min=1),
          keep_corpus: bool = typer.Option(False, help="Keep the web corpus for live local search.")) -> None:
    """Generate a synthetic suite of any size with its recorded search cache (as synth-mini was built)."""
    from mmsearch_gym.benchmarks.suite_builder import build_recorded_suite

    built = build_recorded_suite(out, seed=seed, n_test=n_test, n_train=n_train, n_entities_test=n_entities_test,
                                 n_entities_train=n_entities_train, name=out.name, keep_corpus=keep_corpus)
    console.print(f"suite written to {built.out_dir}: test hash {built.test_hash}, train hash {built.train_hash}, "
                  f"cache bundle {built.bundle.sha256} ({built.bundle.entry_count} searches)")
