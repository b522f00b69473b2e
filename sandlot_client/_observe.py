"""What tails and usage return: a worker's invocations as they happen, a namespace's usage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any, Self

from sandlot_client._errors import SandlotError
from sandlot_client._sse import ServerSentEvent
from sandlot_client._wire import namespace_path, segment

__all__ = [
    "Invocation",
    "NamespaceUsage",
    "TailDropped",
    "UsageDay",
    "tail_item",
    "tail_path",
    "usage_params",
    "usage_path",
]


@dataclass(frozen=True, slots=True)
class Invocation:
    """One finished invocation of a worker (docs/operations.md, "Tail").

    ``outcome`` is ok or why there was no response (error, cpu_limit, invalid_response, ...),
    ``status`` the HTTP status dispatch answered; ``logs`` the worker's output lines as
    ``{"stream", "text"}``; ``exception`` its ``{"type", "message", "traceback"}`` or None;
    ``subrequests`` each ``{"method", "host", "status", "blocked", "reason"}``.
    """

    time: str
    run_id: str
    namespace: str
    worker: str
    outcome: str
    status: int
    method: str
    path: str
    logs: list[dict[str, str]]
    exception: dict[str, str] | None
    subrequests: list[dict[str, Any]]
    cpu_ms: float
    wall_ms: float
    logs_truncated: bool = False
    subrequests_truncated: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        request = data.get("request") or {}
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        return cls(
            **known, method=str(request.get("method", "")), path=str(request.get("path", ""))
        )


@dataclass(frozen=True, slots=True)
class TailDropped:
    """``count`` invocations were dropped here because this tail read too slowly."""

    count: int


def tail_item(sse: ServerSentEvent) -> Invocation | TailDropped | None:
    """An invocation or a drop notice; None for ``open``, ``end`` and events this client
    doesn't know (the caller stops at ``end``)."""
    if sse.event == "invocation":
        return Invocation.from_json(_object(sse))
    if sse.event == "dropped":
        return TailDropped(int(_object(sse)["dropped"]))
    return None


def _object(sse: ServerSentEvent) -> dict[str, Any]:
    try:
        data = json.loads(sse.data)
    except ValueError as exc:
        raise SandlotError(
            None, "invalid_event", f"a {sse.event} event is not JSON: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise SandlotError(None, "invalid_event", f"a {sse.event} event is not a JSON object")
    return data


@dataclass(frozen=True, slots=True)
class UsageDay:
    """What a namespace used on one UTC day (``day`` YYYY-MM-DD; "" for a total)."""

    runs: int
    dispatches: int
    cpu_ms: float
    wall_ms: float
    subrequests: int
    egress_bytes: int
    egress_sent_bytes: int
    egress_received_bytes: int
    day: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class NamespaceUsage:
    """A namespace's usage from ``first`` to ``last`` (UTC days, inclusive): the days with
    any usage, oldest first, and their total."""

    namespace: str
    first: str
    last: str
    total: UsageDay
    days: list[UsageDay] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        return cls(
            namespace=str(data["namespace"]),
            first=str(data["from"]),
            last=str(data["to"]),
            total=UsageDay.from_json(data["total"]),
            days=[UsageDay.from_json(day) for day in data["days"]],
        )


def tail_path(namespace: str, worker: str) -> str:
    return f"{namespace_path(namespace)}/workers/{segment(worker)}/tail"


def usage_path(namespace: str) -> str:
    return namespace_path(namespace) + "/usage"


def usage_params(first: str | None, last: str | None) -> dict[str, str]:
    return {k: v for k, v in (("from", first), ("to", last)) if v is not None}
