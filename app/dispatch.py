"""Running a user worker for one HTTP request: the job that calls its ``on_fetch``.

The worker's modules and the bytecode its build compiled are the run's files
(``/work``); the job calls ``workers._serve`` in the guest, which loads the
main module, builds ``Request`` and ``Env`` from stdin and the run's
environment, calls ``on_fetch`` and returns the ``Response`` as the run's
result. Nothing of the platform reaches an untrusted namespace's worker beyond
the request itself.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ENTRY",
    "InvalidReply",
    "WorkerReply",
    "entry_job_fields",
    "reply_from_result",
]

# The bindings travel in one environment variable, read and removed first thing.
BINDINGS_VAR = "SANDLOT_WORKER_BINDINGS"

# The whole entry is in the guest snapshot (workers._serve): compiling a longer
# program in every run cost more than the rest of a trivial request.
ENTRY = "import workers\nworkers._serve({module!r}, {var!r})\n"


def entry_job_fields(
    *,
    main_module: str,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
    bindings: dict[str, str],
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """code, stdin and env of the run that serves one request."""
    module = main_module.removesuffix(".py").replace("/", ".")
    return {
        "code": ENTRY.format(var=BINDINGS_VAR, module=module),
        "stdin": json.dumps(
            {
                "method": method,
                "url": url,
                "headers": headers,
                "body": base64.b64encode(body).decode(),
                "metadata": metadata or {},
            }
        ),
        "env": {BINDINGS_VAR: json.dumps(bindings)},
    }


class InvalidReply(ValueError):
    """The worker's response can't be sent as HTTP; the message says why."""


# RFC 9110 field names are tokens; values are visible ASCII, spaces, tabs and obs-text
# (latin-1), never CR, LF, NUL or other controls.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
# Hop-by-hop and framing headers belong to this server's connection, never the worker's
# (RFC 9110 7.6.1); the server computes the length itself.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)
# Set by dispatch after the worker has answered.
_PLATFORM_HEADERS = frozenset({"x-sandlot-outcome"})


@dataclass(frozen=True, slots=True)
class WorkerReply:
    """A worker's response, safe to send: status 200-599, valid end-to-end headers only."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def reply_from_result(value: Any) -> WorkerReply:
    """The worker's response from the run's JSON result; raises InvalidReply if it isn't one.

    A status outside 200-599 or a header whose name or value can't be sent is invalid;
    hop-by-hop headers (and those a ``Connection`` header names) and ``Content-Length``
    are dropped; a 204 or 304 loses its body, which HTTP doesn't allow.
    """
    try:
        status, pairs, encoded = value["status"], value["headers"], value["body"]
    except (KeyError, TypeError):
        raise InvalidReply("the run's result is not a workers.Response") from None
    if type(status) is not int or not 200 <= status <= 599:
        raise InvalidReply(f"status {status!r} is not between 200 and 599")
    if not isinstance(pairs, list):
        raise InvalidReply("headers are not a list of (name, value) pairs")
    headers: list[tuple[str, str]] = []
    for pair in pairs:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise InvalidReply("headers are not a list of (name, value) pairs")
        name, field_value = pair
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise InvalidReply(f"header name {name!r} is not an HTTP token")
        if not isinstance(field_value, str) or not _FIELD_VALUE.fullmatch(field_value):
            raise InvalidReply(
                f"header {name!r} has a value with control or non-latin-1 characters"
            )
        headers.append((name.lower(), field_value.strip()))
    named = {
        token.strip().lower()
        for name, field_value in headers
        if name == "connection"
        for token in field_value.split(",")
    }
    headers = [
        (name, field_value)
        for name, field_value in headers
        if name not in _HOP_BY_HOP
        and name not in named
        and name not in _PLATFORM_HEADERS
        and not name.startswith("proxy-")
    ]
    try:
        body = base64.b64decode(encoded, validate=True)
    except (TypeError, ValueError):
        raise InvalidReply("the body is not base64") from None
    if status in (204, 304):
        body = b""
    return WorkerReply(status=status, headers=headers, body=body)
