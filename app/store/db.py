"""Engine, sessions and migrations for the control plane's database."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from app.store.secretbox import SecretBox

__all__ = ["Store", "migrate"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


class Store:
    """A database by URL (``sqlite:///path`` or ``postgresql+psycopg://...``). ``close()`` it.

    ``secrets`` seals worker secrets at rest; without it, saving or reading a worker
    that has secrets raises RuntimeError.
    """

    def __init__(self, url: str, secrets: SecretBox | None = None) -> None:
        self.url = url
        self.secrets = secrets
        # A server's connections can drop while pooled: ping those before use. A
        # SQLite file can't, and the ping was a tenth of a dispatch's lookup.
        sqlite = url.startswith("sqlite")
        if sqlite:
            _private_sqlite_file(url)
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

    def secret_box(self) -> SecretBox:
        if self.secrets is None:
            raise RuntimeError("this Store has no SecretBox: pass Store(url, secrets=...)")
        return self.secrets

    def close(self) -> None:
        self.engine.dispose()


def _private_sqlite_file(url: str) -> None:
    """Make the database file (and its WAL files) readable by this user only (0600).

    SQLite creates its -wal and -shm files with the database file's mode, so creating
    that file first, 0600, covers them; files of an older, looser install are fixed.
    """
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o600)


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
    # Migrations that seal data at rest (0005: worker secrets) need the box.
    config.attributes["secret_box"] = store.secrets
    with store.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("database at schema head (%s)", store.engine.dialect.name)
