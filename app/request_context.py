"""What every log line of a request carries: its request id, and the run id and namespace
of the run it serves (context variables, so code below never passes them along).

:class:`RequestIds` is the ASGI middleware that gives each request its id: the
caller's ``X-Request-Id`` when it is sane (1-128 of letters, digits and ``._:-``),
else a new one; every response carries it back in ``X-Request-Id``, and the name of the
replica that answered in ``X-Sandlot-Replica`` when the replica has one
(``SANDLOT_REPLICA_NAME``).
"""

from __future__ import annotations

import re
import uuid
from contextvars import Context, ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestIds", "adopt", "current", "request_id_of", "set_run"]

_request_id: ContextVar[str | None] = ContextVar("sandlot_request_id", default=None)
_run_id: ContextVar[str | None] = ContextVar("sandlot_run_id", default=None)
_namespace: ContextVar[str | None] = ContextVar("sandlot_namespace", default=None)

_SANE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
HEADER = b"x-request-id"
REPLICA_HEADER = b"x-sandlot-replica"


def current() -> dict[str, str]:
    """The ids in force here (only those set): request_id, run_id, namespace."""
    values = {
        "request_id": _request_id.get(),
        "run_id": _run_id.get(),
        "namespace": _namespace.get(),
    }
    return {name: value for name, value in values.items() if value is not None}


def request_id_of(headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]) -> str:
    """The caller's X-Request-Id if it is sane, else a new random one."""
    for name, value in headers:
        if name == HEADER:
            if _SANE.fullmatch(value):
                return value.decode()
            break
    return uuid.uuid4().hex


def set_run(*, namespace: str | None = None, run_id: str | None = None) -> None:
    """Put a run's namespace and (once started) id in the log context of this request."""
    if namespace is not None:
        _namespace.set(namespace)
    if run_id is not None:
        _run_id.set(run_id)


def adopt(context: Context) -> None:
    """Take the run ids a step run in ``context`` (another task's) set into this one."""
    set_run(namespace=context.get(_namespace), run_id=context.get(_run_id))


class RequestIds:
    """ASGI middleware: the request's id in the log context and on its response, with
    ``replica`` (a header-safe name, or None for no header) in X-Sandlot-Replica."""

    def __init__(self, app: ASGIApp, replica: str | None = None) -> None:
        self.app = app
        self._ours = {HEADER, REPLICA_HEADER}
        self._replica = [] if replica is None else [(REPLICA_HEADER, replica.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("headers", ()))
        _request_id.set(request_id)
        _run_id.set(None)
        _namespace.set(None)
        scope.setdefault("state", {})["request_id"] = request_id

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Ours replace any the app set (a worker's response may carry anything).
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() not in self._ours
                ]
                ids = [(HEADER, request_id.encode()), *self._replica]
                message = {**message, "headers": [*headers, *ids]}
            await send(message)

        await self.app(scope, receive, with_id)
