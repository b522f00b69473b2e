"""A Python client for Sandlot: run code, deploy and call workers, hand tools to models.

::

    from sandlot_client import Sandlot

    with Sandlot() as sandlot:  # SANDLOT_URL, SANDLOT_API_KEY
        run = sandlot.run_code("print('hi')\\n6 * 7", on_stdout=print)
        run.status, run.result.json  # ("ok", 42)

``sandlot.session()`` keeps an interpreter between runs (``with`` opens and closes it).
``AsyncSandlot`` has the same calls, awaited. Results are frozen dataclasses; 429 and
503 answers are retried as ``Retry`` says. docs/client.md has the guide.
"""

from sandlot_client._async_client import AsyncSandlot
from sandlot_client._client import Sandlot
from sandlot_client._errors import ErrorDetail, SandlotConnectionError, SandlotError
from sandlot_client._observe import Invocation, NamespaceUsage, TailDropped, UsageDay
from sandlot_client._results import (
    DeployCheck,
    Event,
    File,
    Generation,
    Output,
    ResultValue,
    RunError,
    RunResult,
    Status,
    Subrequest,
    Usage,
    WorkerResponse,
)
from sandlot_client._retry import Retry
from sandlot_client._session import AsyncSession, Session, SessionFile, SessionInfo
from sandlot_client._sse import ServerSentEvent, SSEDecoder
from sandlot_client._types import ApiKey, Deployment, Hostname, Namespace, Tool, Version, Worker

__all__ = [
    "ApiKey",
    "AsyncSandlot",
    "AsyncSession",
    "DeployCheck",
    "Deployment",
    "ErrorDetail",
    "Event",
    "File",
    "Generation",
    "Hostname",
    "Invocation",
    "Namespace",
    "NamespaceUsage",
    "Output",
    "ResultValue",
    "Retry",
    "RunError",
    "RunResult",
    "SSEDecoder",
    "Sandlot",
    "SandlotConnectionError",
    "SandlotError",
    "ServerSentEvent",
    "Session",
    "SessionFile",
    "SessionInfo",
    "Status",
    "Subrequest",
    "TailDropped",
    "Tool",
    "Usage",
    "UsageDay",
    "Version",
    "Worker",
    "WorkerResponse",
]
