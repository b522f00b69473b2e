"""Usage per namespace and UTC day in the store: add to a day's row, read a range of days.

:func:`add` is an upsert that adds (``INSERT ... ON CONFLICT DO UPDATE SET runs =
usage_days.runs + excluded.runs, ...``), one statement per (namespace, day), so replicas
flushing at the same moment add up instead of overwriting each other. A namespace deleted
meanwhile loses its counts (its rows go with it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date

from sqlalchemy import Date, Float, Integer, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.store.db import Store
from app.store.models import NamespaceRow, UsageDayRow

__all__ = ["DayUsage", "add", "days"]


@dataclass(slots=True)
class DayUsage:
    """Counts of one namespace on one day (mutable: the meter adds to it in memory)."""

    runs: int = 0
    dispatches: int = 0
    cpu_ms: float = 0.0
    wall_ms: float = 0.0
    subrequests: int = 0
    egress_sent_bytes: int = 0
    egress_received_bytes: int = 0

    def merge(self, other: DayUsage) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def empty(self) -> bool:
        return not any(getattr(self, item.name) for item in fields(self))


COLUMNS = tuple(item.name for item in fields(DayUsage))
_FLOATS = frozenset({"cpu_ms", "wall_ms"})


def add(store: Store, counts: Mapping[tuple[str, date], DayUsage]) -> None:
    """Add ``counts`` (by namespace name and day) to the stored rows, in one transaction."""
    with store.session() as session:
        for (namespace, day), usage in sorted(counts.items()):
            if not usage.empty():
                _add_one(session, namespace, day, usage)


def _add_one(session: Session, namespace: str, day: date, usage: DayUsage) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = [
        literal(getattr(usage, name), Float() if name in _FLOATS else Integer()).label(name)
        for name in COLUMNS
    ]
    # The namespace's id in the same statement: nothing is written for a deleted one.
    source = select(NamespaceRow.id, literal(day, Date()), *values).where(
        NamespaceRow.name == namespace
    )
    statement = insert(UsageDayRow).from_select(["namespace_id", "day", *COLUMNS], source)
    statement = statement.on_conflict_do_update(
        index_elements=[UsageDayRow.namespace_id, UsageDayRow.day],
        set_={name: getattr(UsageDayRow, name) + statement.excluded[name] for name in COLUMNS},
    )
    session.execute(statement)


def days(store: Store, namespace: str, first: date, last: date) -> dict[date, DayUsage]:
    """The stored days of ``namespace`` from ``first`` to ``last`` inclusive (days with no
    row are absent); NamespaceNotFound is the caller's to check."""
    query = (
        select(UsageDayRow)
        .join(NamespaceRow, NamespaceRow.id == UsageDayRow.namespace_id)
        .where(NamespaceRow.name == namespace, UsageDayRow.day.between(first, last))
        .order_by(UsageDayRow.day)
    )
    with store.session() as session:
        rows: Iterable[UsageDayRow] = session.scalars(query)
        return {row.day: DayUsage(**{name: getattr(row, name) for name in COLUMNS}) for row in rows}
