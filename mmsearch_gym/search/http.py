"""Compatibility names: the HTTP plumbing moved to `mmsearch_gym.net` (secrets, retry, fetch), which
every layer shares; import from there. `log` stays the search backends' logger."""

from __future__ import annotations

import logging

from mmsearch_gym.net.fetch import (DEFAULT_USER_AGENT, Fetched, HttpFetcher, HttpSettings, Oversize, check_http_url,
                                    make_client, public_hosts_only)
from mmsearch_gym.net.retry import (RETRYABLE_STATUSES, HttpError, RetryPolicy, call_with_retries, is_retryable_status,
                                    retry_after_seconds)
from mmsearch_gym.net.secrets import (REDACTED, RedactingFilter, Secret, install_log_redaction, redact, register_secret,
                                      secret_from)

log = logging.getLogger("mmsearch_gym.search")

__all__ = [
    "DEFAULT_USER_AGENT", "REDACTED", "RETRYABLE_STATUSES", "Fetched", "HttpError", "HttpFetcher", "HttpSettings",
    "Oversize", "RedactingFilter", "RetryPolicy", "Secret", "call_with_retries", "check_http_url",
    "install_log_redaction", "is_retryable_status", "log", "make_client", "public_hosts_only", "redact",
    "register_secret", "retry_after_seconds", "secret_from",
]
