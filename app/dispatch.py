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
from dataclasses import dataclass
from typing import Any

__all__ = ["ENTRY", "WorkerReply", "entry_job_fields", "reply_from_result"]

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


@dataclass(frozen=True, slots=True)
class WorkerReply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def reply_from_result(value: Any) -> WorkerReply | None:
    """The worker's response from the run's JSON result; None if it isn't one."""
    try:
        return WorkerReply(
            status=int(value["status"]),
            headers=[(str(k), str(v)) for k, v in value["headers"]],
            body=base64.b64decode(value["body"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
