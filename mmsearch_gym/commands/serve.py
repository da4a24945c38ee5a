"""`mmsearch-gym serve`: the env over OpenEnv's protocol (WebSocket sessions, extra `serve`)."""

from __future__ import annotations

import json
from typing import Any, List, Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def parse_env_settings(pairs: List[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs (JSON values, else strings) as env kwargs; a one-line error for a bad pair."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--env expects KEY=VALUE, got {pair!r}")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    return settings


def serve_command(
    suite: str = typer.Option("synth-mini", help="Suite name, suite directory, or LOADER:PATH served to every session."),
    search: str = typer.Option("replay", help="replay (strict) or replay_or_empty."),
    cache: Optional[str] = typer.Option(None, help="Search cache directory or bundle (default: the suite's bundled cache)."),
    env: List[str] = typer.Option([], help="Env setting KEY=VALUE (JSON value), e.g. max_turns=4."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (0.0.0.0 to serve other machines)."),
    port: int = typer.Option(8000, min=0, max=65535),
    max_sessions: int = typer.Option(16, min=1, help="Concurrent WebSocket sessions (one env each)."),
    idle_timeout: float = typer.Option(300.0, min=0.001, help="Seconds before an idle session is reaped and its slot freed."),
) -> None:
    """Serve ImageSearchVQA-v0 through openenv-core (/ws sessions, /reset, /step, /health, /schema, /metadata)."""
    try:
        from mmsearch_gym.integrations.openenv.server import serve
    except ImportError as error:
        console.print(f"[red]error:[/red] serving needs the `serve` extra (pip install 'mmsearch-gym[serve]'): {error}")
        raise typer.Exit(2)
    try:
        env_kwargs = {"dataset": suite, "search": search, **parse_env_settings(env)}
        if cache is not None:
            env_kwargs["cache_path"] = cache
        console.print(f"serving ImageSearchVQA-v0 ({suite}, search={search}) on ws://{host}:{port}/ws "
                      f"(max {max_sessions} sessions, idle timeout {idle_timeout:g} s)")
        serve(env_kwargs, host=host, port=port, max_sessions=max_sessions, idle_timeout_s=idle_timeout)
    except (ValueError, TypeError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2)
