"""GET /v1/namespaces/{ns}/usage: what a namespace used per UTC day (app/usage.py counts it).

The admin key or a key of the namespace. ``from`` and ``to`` are UTC days, inclusive;
by default the last 30 days up to today.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from app.auth import CallerDep, require_namespace
from app.deps import ServicesDep
from app.errors import CONTROL_PLANE_ERRORS, invalid_field
from app.schemas import ErrorResponse, NamespaceUsage, UsageCounts, UsageDay
from app.store import namespaces
from app.usage import DayUsage

router = APIRouter(prefix="/v1/namespaces/{namespace}", tags=["usage"])

# The longest range one request may ask for (a leap year's days).
MAX_DAYS = 366
_DEFAULT_DAYS = 30


def _parsed(field: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid_field(field, f"{value!r} is not a day: give YYYY-MM-DD") from None


def day_range(first: str | None, last: str | None, today: date) -> tuple[date, date]:
    """The inclusive range asked for; 422 naming the field for bad days or ranges."""
    to = _parsed("to", last) or today
    start = _parsed("from", first) or to - timedelta(days=_DEFAULT_DAYS - 1)
    if start > to:
        raise invalid_field("from", f"{start} is after to ({to}): give from <= to")
    if (to - start).days + 1 > MAX_DAYS:
        raise invalid_field(
            "from", f"{start} to {to} is {(to - start).days + 1} days; ask for at most {MAX_DAYS}"
        )
    return start, to


def _counts(usage: DayUsage) -> dict[str, int | float]:
    counts: dict[str, int | float] = asdict(usage)
    counts["cpu_ms"] = round(usage.cpu_ms, 3)
    counts["wall_ms"] = round(usage.wall_ms, 3)
    counts["egress_bytes"] = usage.egress_sent_bytes + usage.egress_received_bytes
    return counts


@router.get(
    "/usage",
    response_model=NamespaceUsage,
    responses={
        **CONTROL_PLANE_ERRORS,
        422: {
            "model": ErrorResponse,
            "description": "A day that is not YYYY-MM-DD, from after to, or more than 366 days",
        },
    },
)
async def get_usage(
    namespace: str,
    caller: CallerDep,
    services: ServicesDep,
    first: Annotated[
        str | None,
        Query(
            alias="from",
            description="The first UTC day, YYYY-MM-DD (default: 29 days before to)",
            examples=["2026-12-01"],
        ),
    ] = None,
    last: Annotated[
        str | None,
        Query(
            alias="to",
            description="The last UTC day, inclusive, YYYY-MM-DD (default: today)",
            examples=["2026-12-31"],
        ),
    ] = None,
) -> NamespaceUsage:
    """Runs, dispatches, CPU and wall time, subrequests and egress bytes per UTC day.

    Counted where runs start (execute, tools, generate and session turns by a key of the
    namespace; every dispatch of its workers, anonymous ones included) and added to the
    database every SANDLOT_USAGE_FLUSH_MS by each replica; this replica's unflushed counts
    are included. At most 366 days per request.
    """
    require_namespace(caller, namespace)
    start, end = day_range(first, last, datetime.now(UTC).date())
    # 404 for a namespace that doesn't exist (its usage went with it).
    await asyncio.to_thread(namespaces.get, services.store, namespace)
    found = await services.usage.days(namespace, start, end)
    total = DayUsage()
    for counts in found.values():
        total.merge(counts)
    return NamespaceUsage.model_validate(
        {
            "namespace": namespace,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "days": [
                UsageDay.model_validate({"day": day.isoformat(), **_counts(counts)})
                for day, counts in found.items()
            ],
            "total": UsageCounts.model_validate(_counts(total)),
        }
    )
