"""`mmsearch-gym cache ...`: inspect search caches and move them around as bundles.

Why a command line: sharing a recorded cache (export, verify the hash a leaderboard pins, import) is
something people do by hand, outside Python.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from mmsearch_gym.cache.bundle import (
    CONFLICT_POLICIES, BundleError, BundleInfo, export_bundle, extracted_copy_dir, import_bundle, verify_bundle,
    verify_cache_content,
)
from mmsearch_gym.cache.store import SearchCache
from mmsearch_gym.search.errors import CorruptCacheEntry

app = typer.Typer(help="Inspect search caches; export, verify and import cache bundles.", no_args_is_help=True)


def _fail(error: Exception) -> NoReturn:
    typer.echo(f"error: {error}", err=True)
    raise typer.Exit(1)


def _open_existing(path: Path) -> SearchCache:
    if path.is_file():
        raise ValueError(f"{str(path)!r} is a file; for a bundle use `mmsearch-gym cache verify`")
    return SearchCache(path, create=False)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def _bundle_table(info: BundleInfo, title: str) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in (("file", info.path), ("sha256", info.sha256), ("format version", str(info.format_version)),
                        ("entries", str(info.entry_count)), ("thumbnails", str(info.image_count)),
                        ("backend ids", ", ".join(info.backend_ids) or "-"), ("size", _human(info.size_bytes))):
        table.add_row(name, value)
    return table


def _print_bundle(info: BundleInfo, title: str) -> None:
    Console().print(_bundle_table(info, title))
    typer.echo(f"sha256 {info.sha256}")  # unwrapped, for scripts and leaderboards


@app.command()
def stats(cache: Path = typer.Argument(..., help="Search cache directory."),
          price_per_1k: float = typer.Option(15.0, min=0.0, help="USD per 1000 live searches, for the estimate.")
          ) -> None:
    """Entries by backend id and kind, distinct thumbnails, size on disk, and what recording them live
    costs (each entry is one billable search on a paid backend such as SerpApi)."""
    try:
        with _open_existing(cache) as opened:
            summary = opened.stats()
    except (ValueError, OSError, CorruptCacheEntry) as error:
        _fail(error)
    table = Table(title=f"search cache {summary.directory}")
    table.add_column("backend id")
    table.add_column("image", justify="right")
    table.add_column("text", justify="right")
    table.add_column("total", justify="right")
    for backend_id, counts in summary.by_backend.items():
        table.add_row(backend_id, str(counts["image"]), str(counts["text"]), str(sum(counts.values())))
    table.add_row("[bold]all[/bold]", "", "", f"[bold]{summary.entries}[/bold]")
    console = Console()
    console.print(table)
    console.print(f"thumbnails: {summary.images}   size on disk: {_human(summary.size_bytes)}")
    console.print(f"billable searches to record these live: {summary.entries}   estimated cost: "
                  f"${summary.entries * price_per_1k / 1000:.2f} at ${price_per_1k:g} per 1k (replaying them is free)")


@app.command("list")
def list_entries(cache: Path = typer.Argument(..., help="Search cache directory."),
                 limit: int = typer.Option(50, "--limit", "-n", min=0, help="Rows to show (0: all).")) -> None:
    """Cached searches: backend id, kind, top_k, query text or image digest, result count."""
    try:
        with _open_existing(cache) as opened:
            table = Table(title=f"search cache {opened.directory}")
            for column in ("backend id", "kind", "top_k", "query / image digest", "results"):
                table.add_column(column)
            shown = 0
            for entry in opened.entries():
                if limit and shown >= limit:
                    break
                table.add_row(entry.backend_id, entry.kind, str(entry.top_k),
                              entry.query if entry.query is not None else str(entry.image_digest),
                              str(len(entry.results.items)))
                shown += 1
    except (ValueError, OSError, CorruptCacheEntry) as error:
        _fail(error)
    Console().print(table)


@app.command("export")
def export_command(cache: Path = typer.Argument(..., help="Search cache directory."),
                   output: Path = typer.Option(..., "--output", "-o", help="Bundle file to write.")) -> None:
    """Write the cache to one portable bundle file (same cache, same bytes)."""
    try:
        with _open_existing(cache) as opened:
            info = export_bundle(opened, output)
    except (ValueError, OSError, CorruptCacheEntry) as error:
        _fail(error)
    _print_bundle(info, "exported bundle")


@app.command("import")
def import_command(bundle: Path = typer.Argument(..., help="Bundle file."),
                   cache: Path = typer.Argument(..., help="Search cache directory (created when missing)."),
                   on_conflict: str = typer.Option("error", help=f"One of {', '.join(CONFLICT_POLICIES)}.")
                   ) -> None:
    """Verify a bundle and add its entries to a cache (nothing is written unless all of it is valid)."""
    try:
        info = import_bundle(bundle, cache, on_conflict=on_conflict)  # type: ignore[arg-type]
    except (BundleError, ValueError, OSError, CorruptCacheEntry) as error:
        _fail(error)
    _print_bundle(info, f"imported into {cache}")


@app.command()
def verify(bundle: Path = typer.Argument(..., help="Bundle file."),
           work_dir: Optional[Path] = typer.Option(  # noqa: UP007 - typer reads the annotation
               None, "--work-dir", help="Where bundles opened as caches are extracted (default: "
               "$MMSEARCH_GYM_HOME/bundles or the user cache directory).")) -> None:
    """Re-read a bundle and recompute its hashes, then check the extracted copy that replays of it read
    (when there is one) against it; exit status 1 when anything is wrong."""
    try:
        info = verify_bundle(bundle)
        copy = extracted_copy_dir(bundle, work_dir)
        checked = (copy / "cache.db").is_file()
        if checked:
            with SearchCache(copy, readonly=True) as cache:
                verify_cache_content(cache, info.sha256)
    except (BundleError, OSError, ValueError, CorruptCacheEntry) as error:
        _fail(error)
    _print_bundle(info, "bundle OK")
    typer.echo(f"extracted copy {copy}: holds exactly the bundle's content" if checked
               else f"no extracted copy in {copy.parent} yet (replays extract and use one)")


@app.command("import-mmsearch-r1")
def import_mmsearch_r1_command(
    pickle_file: Path = typer.Argument(..., help="MMSearch-R1's released cache, e.g. fvqa_test_image_search_results_cache.pkl."),
    suite: str = typer.Option(..., help="The dataset its data_ids belong to, e.g. fvqa:fvqa_test.parquet."),
    output: Path = typer.Option(..., "--output", "-o", help="Bundle file to write."),
    fetch_thumbnails: bool = typer.Option(False, help="Fetch thumbnail URLs once each (public hosts only); a failure gives a title-only result."),
    top_k: int = typer.Option(5, min=1, help="Results per search the bundle answers for (the env's top_k)."),
    backend_id: str = typer.Option("mmsearch-r1-fvqa-release", help="Backend id the entries are stored under."),
) -> None:
    """Convert MMSearch-R1's image-search pickle into a verified bundle (loaded safely: no code runs)."""
    from mmsearch_gym.cache.importers import import_mmsearch_r1, question_images_by_data_id
    from mmsearch_gym.data.suites import resolve_dataset

    try:
        report = import_mmsearch_r1(pickle_file, question_images_by_data_id(resolve_dataset(suite)), output,
                                    backend_id=backend_id, top_k=top_k, fetch_thumbnails=fetch_thumbnails)
    except (BundleError, ValueError, OSError) as error:
        _fail(error)
    for line in report.lines():
        typer.echo(line)
    assert report.bundle is not None
    _print_bundle(report.bundle, "imported MMSearch-R1 cache")
