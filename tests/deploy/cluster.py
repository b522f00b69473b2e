"""A deployment on loopback: a fresh PostgreSQL database, N real service processes on it,
and Debian's HAProxy in front of them running deploy/haproxy.cfg.

Everything is a real process started by PID and stopped by PID: other tests (and other
checkouts) run the same programs on this machine, so nothing here looks processes up by
name.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psycopg
from cryptography.fernet import Fernet

from tests.conftest import Service, free_port

ROOT = Path(__file__).resolve().parents[2]
HAPROXY = Path("/usr/sbin/haproxy")
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# The line of deploy/haproxy.cfg that finds compose's replicas by DNS; on loopback each
# replica is its own port, so it becomes one `server` line per replica.
SERVER_TEMPLATE = "    server-template replica "


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on loopback (its SQLAlchemy URL), dropped after."""
    name = f"sandlot_deploy_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def haproxy_config(servers: dict[str, str]) -> str:
    """deploy/haproxy.cfg with its server template replaced by ``servers`` (name → host:port)."""
    lines = HAPROXY_CONFIG.read_text().splitlines(keepends=True)
    template = [i for i, line in enumerate(lines) if line.startswith(SERVER_TEMPLATE)]
    assert len(template) == 1, "deploy/haproxy.cfg has one server-template line"
    ours = [f"    server {name} {address}\n" for name, address in servers.items()]
    return "".join(lines[: template[0]] + ours + lines[template[0] + 1 :])


class LoadBalancer:
    """HAProxy in the foreground on a loopback port, in front of ``servers``."""

    def __init__(self, tmp: Path, servers: dict[str, str]) -> None:
        assert HAPROXY.exists(), (
            f"{HAPROXY} is missing: run scripts/install-haproxy (make test does)"
        )
        self.port, stats_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats_url = f"http://127.0.0.1:{stats_port}/stats;csv"
        config = tmp / "haproxy.cfg"
        config.write_text(haproxy_config(servers))
        env = {
            "PATH": "/usr/sbin:/usr/bin:/bin",
            "SANDLOT_LB_BIND": f"127.0.0.1:{self.port}",
            "SANDLOT_LB_STATS_BIND": f"127.0.0.1:{stats_port}",
        }
        self.log_path = tmp / "haproxy.log"
        self._log = self.log_path.open("ab")
        # -db: stay in the foreground, so this Popen's PID is haproxy itself.
        self.proc = subprocess.Popen(
            [str(HAPROXY), "-db", "-f", str(config)],
            env=env,
            stdout=self._log,
            stderr=self._log,
        )

    def status(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it (UP, DOWN, "UP 1/2", ...)."""
        text = httpx.get(self.stats_url, timeout=5).text.lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "sandlot" and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def stats(self, server: str) -> dict[str, str]:
        """HAProxy's counters of one server (stot, wretr, wredis, eresp, ...)."""
        text = httpx.get(self.stats_url, timeout=5).text.lstrip("# ")
        for row in csv.DictReader(io.StringIO(text)):
            if row["pxname"] == "sandlot" and row["svname"] == server:
                return row
        raise KeyError(server)

    def wait_until(self, wanted: dict[str, str], timeout_s: float = 30) -> float:
        """Wait until the servers named in ``wanted`` have those states; the seconds it took."""
        start = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{self.log()}")
            try:
                status = self.status()
                if all(status.get(name) == state for name, state in wanted.items()):
                    return time.monotonic() - start
            except httpx.HTTPError:
                status = {}
            if time.monotonic() - start > timeout_s:
                raise RuntimeError(f"servers are {status}, not {wanted}:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Replica:
    """One service process of the deployment, named ``name`` in X-Sandlot-Replica."""

    def __init__(
        self, tmp: Path, name: str, database_url: str, port: int | None = None, **settings: str
    ) -> None:
        self.name = name
        self.database_url = database_url
        self.settings = settings
        port = port or free_port()
        self.service = Service(
            tmp,
            port=port,
            database_url=database_url,
            replica_name=name,
            replica_url=f"http://127.0.0.1:{port}",
            **settings,
        )
        self.url = self.service.url
        self._children: list[int] = []

    @property
    def alive(self) -> bool:
        return self.service.proc.poll() is None

    def restarted(self, tmp: Path) -> Replica:
        """A new process in this one's place: same name, port, database and settings (a
        new data dir under ``tmp``, as a new container would have)."""
        return Replica(tmp, self.name, self.database_url, port=self.service.port, **self.settings)

    def client(self, timeout: float = 60) -> httpx.Client:
        return self.service.client(timeout)

    def kill(self) -> tuple[float, float]:
        """SIGKILL the service process, as a crashed machine would leave it; its worker
        processes (reaped in close()) lose their parent with it. The time.monotonic() of
        the signal and of the process's end (a request sent in between may still have
        reached it)."""
        self._children = self.service.worker_pids()
        signalled = time.monotonic()
        os.kill(self.service.proc.pid, signal.SIGKILL)
        self.service.proc.wait(10)
        return signalled, time.monotonic()

    def close(self) -> None:
        self.service.close()
        for pid in self._children:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def deployment(
    tmp: Path, replicas: int, **settings: str
) -> Iterator[tuple[list[Replica], LoadBalancer]]:
    """``replicas`` service processes on a fresh database behind HAProxy, all ready.

    The replicas start at once (start-up is mostly imports and worker pools), named
    replica1, replica2, ... like HAProxy's servers, with the same keys (a secrets key
    generated per data dir would differ between them).
    """
    settings = {"secrets_key": Fernet.generate_key().decode(), **settings}
    with fresh_database() as database_url:
        names = [f"replica{i}" for i in range(1, replicas + 1)]
        for name in names:
            (tmp / name).mkdir()
        with ThreadPoolExecutor(replicas) as pool:
            started = [
                pool.submit(Replica, tmp / name, name, database_url, **settings) for name in names
            ]
            errors = [f.exception() for f in started]
        made = [f.result() for f, error in zip(started, errors, strict=True) if error is None]
        lb: LoadBalancer | None = None
        try:
            if any(errors):
                raise RuntimeError(f"a replica did not start: {errors}")
            lb = LoadBalancer(tmp, {r.name: r.url.removeprefix("http://") for r in made})
            lb.wait_until({r.name: "UP" for r in made})
            yield made, lb
        finally:
            if lb is not None:
                lb.close()
            for replica in made:
                replica.close()
