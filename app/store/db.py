"""Engine, sessions and migrations for the control plane's database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Store", "migrate"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class Store:
    """A database by URL (``sqlite:///path`` or ``postgresql+psycopg://...``). ``close()`` it."""

    def __init__(self, url: str) -> None:
        self.url = url
        # A server's connections can drop while pooled: ping those before use. A
        # SQLite file can't, and the ping was a tenth of a dispatch's lookup.
        sqlite = url.startswith("sqlite")
        self.engine: Engine = create_engine(url, pool_pre_ping=not sqlite)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Counts this process's writes, so caches of what it read can tell they are stale:
        # once when a statement writes, and again when its transaction commits (a read
        # between the two saw the old data).
        self.generation = 0
        event.listen(self.engine, "before_cursor_execute", self._count_write)
        event.listen(self.engine, "commit", self._count_commit)

    def _count_write(self, connection: Connection, *args: object) -> None:
        statement = args[1]
        if isinstance(statement, str) and statement.lstrip()[:6].upper() != "SELECT":
            connection.info["sandlot_wrote"] = True
            self.generation += 1

    def _count_commit(self, connection: Connection) -> None:
        if connection.info.pop("sandlot_wrote", False):
            self.generation += 1

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection: object, _record: object) -> None:
    cursor = connection.cursor()  # type: ignore[attr-defined]
    # Foreign keys are off by default in SQLite; WAL lets readers work during writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def migrate(store: Store) -> None:
    """Upgrade the database to the newest schema (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("database at schema head (%s)", store.engine.dialect.name)
