"""The `mmsearch-gym` command line (typer)."""

from __future__ import annotations

import typer

import mmsearch_gym

app = typer.Typer(help="mmsearch-gym: search-augmented VQA environments, caches, evaluation.",
                  no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the package version."""
    typer.echo(mmsearch_gym.__version__)


def main() -> None:
    app()
