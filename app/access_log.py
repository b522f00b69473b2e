"""The HTTP access log without credentials: request targets go through ``redact_url``.

Uvicorn logs every request's path *with its query string* at INFO; a caller's
``?api_key=...`` or ``?token=...`` (on /dispatch URLs, for instance) would land in the
service log word for word.
"""

from __future__ import annotations

import logging

from sandbox.egress import redact_url

ACCESS_LOGGER = "uvicorn.access"


class RedactTargets(logging.Filter):
    """Rewrites uvicorn's access records: ``(client, method, target, version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_url(args[2]), args[3], args[4])
        return True


def redact_access_log() -> None:
    """Install the filter on uvicorn's access logger (idempotent)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactTargets) for f in logger.filters):
        logger.addFilter(RedactTargets())
