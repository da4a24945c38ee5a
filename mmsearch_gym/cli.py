"""The `mmsearch-gym` command line (typer). Each command group lives in `mmsearch_gym.commands`."""

from __future__ import annotations

import typer

import mmsearch_gym
from mmsearch_gym.commands.cache import app as cache_app
from mmsearch_gym.commands.data import app as data_app
from mmsearch_gym.commands.evaluate import run_eval
from mmsearch_gym.commands.judge import judge_command
from mmsearch_gym.commands.leaderboard import leaderboard_app, submit_command, validate_command
from mmsearch_gym.commands.record import record_command
from mmsearch_gym.commands.serve import serve_command
from mmsearch_gym.commands.train import app as train_app

app = typer.Typer(help="mmsearch-gym: search-augmented VQA environments, search caches, evaluation, leaderboard.",
                  no_args_is_help=False, invoke_without_command=True)
app.add_typer(cache_app, name="cache", help="Inspect, export, import and verify search caches.")
app.add_typer(leaderboard_app, name="leaderboard", help="Build the leaderboard site from submissions.")
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train", help="GRPO and SFT training on the environment (extra `train`).")
cache_app.command("record")(record_command)
app.command("judge")(judge_command)
app.command("eval")(run_eval)
app.command("submit")(submit_command)
app.command("validate")(validate_command)
app.command("serve")(serve_command)


@app.callback()
def _root(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


@app.command()
def version() -> None:
    """Print the package version."""
    typer.echo(mmsearch_gym.__version__)


def main() -> None:
    app()
