"""HTTP for every layer: secrets and redaction (`secrets`), the retry policy (`retry`), the bounded
fetcher (`fetch`) and the one OpenAI-compatible chat client (`chat`). The rules in one page:
docs/http.md.

Ground layer: imports nothing of ours but `mmsearch_gym.checks`. httpx and tenacity are needed only
when the submodules are imported, so `import mmsearch_gym.net` stays cheap and dependency-free.
"""

from __future__ import annotations

import importlib

__all__ = [
    "ChatClient", "Fetched", "HttpError", "HttpFetcher", "HttpSettings", "REDACTED", "RetryPolicy", "Secret",
    "call_with_retries", "check_http_url", "public_hosts_only", "public_url", "redact", "register_secret",
    "retry_after_seconds", "secret_from",
]

_HOME = {
    "ChatClient": "chat", "Fetched": "fetch", "HttpFetcher": "fetch", "HttpSettings": "fetch",
    "check_http_url": "fetch", "public_hosts_only": "fetch", "HttpError": "retry", "RetryPolicy": "retry",
    "call_with_retries": "retry", "retry_after_seconds": "retry", "REDACTED": "secrets", "Secret": "secrets",
    "public_url": "secrets", "redact": "secrets", "register_secret": "secrets", "secret_from": "secrets",
}


def __getattr__(name: str) -> object:
    if name in _HOME:
        return getattr(importlib.import_module(f"mmsearch_gym.net.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
