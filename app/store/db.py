"""Engine, sessions and migrations for the control plane's database.

Two things every write tells others about, both on commit:

* ``Store.generation`` counts this process's writes to the tables that read caches
  keep (``CACHED_TABLES``), so a cache (app/store/cache.py) knows at once that what it
  read is stale;
* the same commits are announced to the other replicas on the ``cache`` channel (with
  the tables written), and ``Store.notify`` announces anything else (e.g. deleted
  artifacts): on PostgreSQL as ``pg_notify`` inside the transaction, so a message is
  sent exactly when its transaction commits; on other databases (one process) it goes
  to ``Store.on_notify`` after the commit. app/bus.py delivers both to subscribers.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from app.store.secretbox import SecretBox

__all__ = ["CACHED_TABLES", "Store", "migrate", "pg_channel"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"

# What read caches keep (dispatch targets, hostname routes) is read from these tables:
# a write to one of them makes cached reads stale, here and on every replica. A new
# cache of other tables adds them here.
CACHED_TABLES = frozenset({"namespaces", "api_keys", "workers", "worker_versions", "hostnames"})
# A statement that writes without a compiled table (raw SQL, DDL) may touch any of them.
_ANY_TABLE = "*"
_WRITES = re.compile(r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+\"?(\w+)", re.IGNORECASE)
_NOTIFY_KEY = "sandlot_notify"
_TABLES_KEY = "sandlot_tables"


def pg_channel(channel: str) -> str:
    """The PostgreSQL LISTEN/NOTIFY channel of a bus channel (app/bus.py)."""
    return "sandlot." + channel


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
        self.postgresql = self.engine.dialect.name == "postgresql"
        # Counts this process's writes to CACHED_TABLES, so caches of what it read can
        # tell they are stale: once when a statement writes, and again when its
        # transaction commits (a read between the two saw the old data).
        self.generation = 0
        # Where messages go after commit when the database can't send them (not
        # PostgreSQL): set by the app to its bus; None drops them.
        self.on_notify: Callable[[str, dict[str, Any]], None] | None = None
        event.listen(self.engine, "before_cursor_execute", self._count_write)
        event.listen(self.engine, "commit", self._count_commit)
        event.listen(self.engine, "rollback", self._forget_writes)
        event.listen(self._sessions, "before_commit", self._send_notices)
        event.listen(self._sessions, "after_commit", self._hand_over_notices)
        event.listen(self._sessions, "after_rollback", self._drop_notices)

    def _count_write(self, connection: Connection, *args: Any) -> None:
        statement, context = args[1], args[3]
        if not isinstance(statement, str) or statement.lstrip()[:6].upper() in ("SELECT", "PRAGMA"):
            return
        compiled = getattr(context, "compiled", None)
        table = getattr(getattr(getattr(compiled, "statement", None), "table", None), "name", None)
        if not isinstance(table, str):
            found = _WRITES.match(statement)
            table = found.group(1).lower() if found else _ANY_TABLE
        if table in CACHED_TABLES or table == _ANY_TABLE:
            connection.info.setdefault(_TABLES_KEY, set()).add(table)
            self.generation += 1

    def _count_commit(self, connection: Connection) -> None:
        if connection.info.pop(_TABLES_KEY, None):
            self.generation += 1

    def _forget_writes(self, connection: Connection) -> None:
        connection.info.pop(_TABLES_KEY, None)

    def notify(self, session: Session, channel: str, message: dict[str, Any]) -> None:
        """Announce ``message`` (JSON, at most 7,900 bytes) on the bus ``channel`` if, and
        when, the session's transaction commits."""
        payload = json.dumps(message, separators=(",", ":"))
        if len(payload.encode()) > 7_900:  # app/bus.py's MAX_MESSAGE_BYTES (NOTIFY: 8,000)
            raise ValueError(f"a bus message is at most 7900 bytes; this one is {len(payload)}")
        session.info.setdefault(_NOTIFY_KEY, []).append((channel, payload))

    def _send_notices(self, session: Session) -> None:
        session.flush()  # commit flushes after this hook: what it would write counts too
        tables = session.connection().info.get(_TABLES_KEY)
        if tables:
            written = sorted(CACHED_TABLES) if _ANY_TABLE in tables else sorted(tables)
            self.notify(session, "cache", {"tables": written})
        if not self.postgresql:
            return
        for channel, payload in session.info.get(_NOTIFY_KEY, ()):
            session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": pg_channel(channel), "payload": payload},
            )

    def _hand_over_notices(self, session: Session) -> None:
        notices = session.info.pop(_NOTIFY_KEY, ())
        if self.postgresql or self.on_notify is None:
            return
        for channel, payload in notices:
            try:
                self.on_notify(channel, json.loads(payload))
            except Exception:  # the commit happened: a subscriber's fault is not the writer's
                log.exception("bus: handing over a %r message failed", channel)

    def _drop_notices(self, session: Session) -> None:
        session.info.pop(_NOTIFY_KEY, None)

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


# pg_advisory_xact_lock's key for schema upgrades: any constant no other code uses.
_MIGRATION_LOCK = 0x5A4D_4C01


def migrate(store: Store, artifact_dir: Path | None = None) -> None:
    """Upgrade the database to the newest schema (idempotent).

    ``artifact_dir``: where artifacts were files before they moved into the database
    (0008 moves them from there; the directory stays as the local cache).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Migrations that seal data at rest (0005: worker secrets) need the box.
    config.attributes["secret_box"] = store.secrets
    config.attributes["artifact_dir"] = artifact_dir
    with store.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together on a new database would each create the schema:
            # one migrates, the others wait here and then find it at head. The lock is
            # the transaction's (DDL is transactional on PostgreSQL), released at commit.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("database at schema head (%s)", store.engine.dialect.name)
