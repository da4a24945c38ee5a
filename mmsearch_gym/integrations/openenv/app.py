"""The ASGI app for container deployments (`uvicorn mmsearch_gym.integrations.openenv.app:app`).

Why a module-level app configured by environment variables: OpenEnv's `openenv.yaml` and container
runtimes start a server from an import path, with no command-line flags to pass. Variables:
`MMSEARCH_GYM_SUITE` (default `synth-mini`), `MMSEARCH_GYM_SEARCH` (`replay`), `MMSEARCH_GYM_CACHE`,
`MMSEARCH_GYM_ENV` (a JSON object of further env settings), `MMSEARCH_GYM_MAX_SESSIONS` (16),
`MMSEARCH_GYM_IDLE_TIMEOUT` (seconds, 300).
"""

from __future__ import annotations

import os
from typing import Any

from mmsearch_gym.checks import parse_json_object
from mmsearch_gym.integrations.openenv.server import make_app


def settings_from_environment(environ: dict[str, str] | os._Environ[str] = os.environ) -> tuple[dict[str, Any], int, float]:
    """(env kwargs, max sessions, idle timeout) from the variables above; a ValueError names a bad one."""
    env_kwargs: dict[str, Any] = {"dataset": environ.get("MMSEARCH_GYM_SUITE", "synth-mini"),
                                  "search": environ.get("MMSEARCH_GYM_SEARCH", "replay")}
    if environ.get("MMSEARCH_GYM_CACHE"):
        env_kwargs["cache_path"] = environ["MMSEARCH_GYM_CACHE"]
    extra = environ.get("MMSEARCH_GYM_ENV", "")
    if extra:
        env_kwargs.update(parse_json_object(extra, f"MMSEARCH_GYM_ENV={extra!r}"))
    try:
        max_sessions = int(environ.get("MMSEARCH_GYM_MAX_SESSIONS", "16"))
        idle_timeout = float(environ.get("MMSEARCH_GYM_IDLE_TIMEOUT", "300"))
    except ValueError as error:
        raise ValueError(f"MMSEARCH_GYM_MAX_SESSIONS / MMSEARCH_GYM_IDLE_TIMEOUT: {error}") from None
    return env_kwargs, max_sessions, idle_timeout


_env_kwargs, _max_sessions, _idle_timeout = settings_from_environment()
app = make_app(_env_kwargs, max_sessions=_max_sessions, idle_timeout_s=_idle_timeout)
