"""The service's log: text (the development default) or one JSON object a line, each
record with the request id, run id and namespace in force (app/request_context.py),
and secrets redacted from the finished line.

Redaction covers the values of the service's own secrets (admin key, secrets key, the
model's API key), ``Authorization``-style bearer tokens, and credentials in query
strings or ``key=value`` text (``api_key``, ``token``, ``password``, ``secret``, ...).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from typing import Literal

from app import request_context

__all__ = ["JsonFormatter", "TextFormatter", "configure", "redact"]

_BEARER = re.compile(r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}")
_CREDENTIAL = re.compile(
    r"(?i)\b([a-z_-]*(?:api[_-]?key|token|password|passwd|secret|signature|sig|auth)[a-z_-]*)"
    r"(=|:\s*|\"\s*:\s*\")([^&\s\"',;]+)"
)
# The marker redact_url (the access log's filter) uses too.
REDACTED = "REDACTED"
_CONTEXT = ("request_id", "run_id", "namespace")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the given secret values, bearer tokens and key=value credentials."""
    for secret in secrets:
        if len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


class _Redacting(logging.Formatter):
    def __init__(self, secrets: Iterable[str], fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.render(record), self.secrets)

    def render(self, record: logging.LogRecord) -> str:
        raise NotImplementedError


class TextFormatter(_Redacting):
    """``time LEVEL logger [request_id=… run_id=… namespace=…]: message``"""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(secrets, "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s")

    def render(self, record: logging.LogRecord) -> str:
        ids = request_context.current()
        record.context = (
            " [" + " ".join(f"{k}={ids[k]}" for k in _CONTEXT if k in ids) + "]" if ids else ""
        )
        return logging.Formatter.format(self, record)


class JsonFormatter(_Redacting):
    """One JSON object a line: time, level, logger, message, the ids, exception."""

    def render(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **request_context.current(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(
    *, level: str, log_format: Literal["text", "json"], secrets: Iterable[str] = ()
) -> None:
    """One handler on the root logger (uvicorn's loggers propagate to it)."""
    formatter: logging.Formatter = (
        JsonFormatter(secrets) if log_format == "json" else TextFormatter(secrets)
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
