"""TenantRuntimes: each tenant's Pyodide sessions in a Deno process of their own.

The real Deno host and snapshot, driven as a worker process drives them. The attack: code
whose Web Worker thread Deno's ``terminate()`` can't stop (a JavaScript built-in over a
huge array) makes the driver restart its Deno; that restart must end only the sessions of
the tenant whose code did it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.engines.pyodide import PyodideArtifacts, create_runner, proc
from sandbox.engines.pyodide.host import PyodideRuntime
from sandbox.engines.pyodide.tenants import TenantRuntimes
from sandbox.events import RunReport, Status
from sandbox.jobs import Job
from sandbox.limits import MIB, Limits
from tests.engines.test_stack_runtime import Sink

pytestmark = pytest.mark.slow

# Work Deno's terminate() can't stop (a known Deno bug: a thread busy in JavaScript keeps
# running after it). Guest code writes no JavaScript or wasm of its own (lockdown.mjs), but
# a built-in over a huge array still runs about a minute on the worker's thread.
SPINS = {
    "array-builtin": (
        "import js\nprint('spinning', flush=True)\njs.Array.new(2**32 - 1).lastIndexOf(1)"
    ),
}


def make_tenants(artifacts: PyodideArtifacts, tmp_path: Path, **timings: float) -> TenantRuntimes:
    def make(for_tenant: bool) -> PyodideRuntime:
        return PyodideRuntime(
            artifacts.layout,
            tmp_path / "deno",
            refill=not for_tenant,
            session_disk_bytes=16 * MIB,
        )

    return TenantRuntimes(make, **timings)


@pytest.fixture
def tenants(pyodide_artifacts: PyodideArtifacts, tmp_path: Path) -> Iterator[TenantRuntimes]:
    runtimes = make_tenants(pyodide_artifacts, tmp_path, check_s=0.2)
    yield runtimes
    runtimes.close()


def turn(
    tenants: TenantRuntimes, session: str, code: str, **limits: Any
) -> tuple[RunReport, bool, Sink]:
    sink = Sink()
    report, alive = tenants.run_turn(session, Job(code=code, limits=Limits(**limits)), sink)
    tenants.prepare()
    return report, alive, sink


def value(report: RunReport) -> Any:
    assert report.status is Status.OK, report
    assert report.result is not None
    return report.result.json


def deno_pid(tenants: TenantRuntimes, session: str) -> int:
    """The pid of the Deno process holding ``session``."""
    own = tenants._tenants[tenants._where[session]]
    return own.runtime._pid()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie the driver has not reaped yet is gone too.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("where", ["turn", "run"])
@pytest.mark.parametrize("spin", list(SPINS))
def test_a_tenant_that_spins_ends_only_its_own_sessions(
    tenants: TenantRuntimes, tmp_path: Path, spin: str, where: str
) -> None:
    # Tenant B's session, opened first, in the same worker process as tenant A's.
    tenants.open_session("b", tmp_path / "b", 256, tenant="B")
    assert value(turn(tenants, "b", "x = 41\nx")[0]) == 41
    tenants.open_session("a-kept", tmp_path / "a-kept", 256, tenant="A")
    assert value(turn(tenants, "a-kept", "y = 1\ny")[0]) == 1
    b_pid, a_pid = deno_pid(tenants, "b"), deno_pid(tenants, "a-kept")
    if where == "turn":
        tenants.open_session("a", tmp_path / "a", 256, tenant="A")
        report, kept, sink = turn(tenants, "a", SPINS[spin], wall_ms=1000)
        assert not kept
    else:
        sink = Sink()
        report = tenants.run(Job(code=SPINS[spin], limits=Limits(wall_ms=1000)), sink)
        tenants.prepare()
    assert report.status is Status.WALL_LIMIT, report
    assert "spinning" in "".join(sink.stdout)  # it got as far as the loop
    runs_pid = tenants._runs._pid()
    # The thread Deno can't end is freed by restarting the Deno it is in (housekeeping
    # looks every 0.2 s; a thread let go has 1 s to end).
    spun = a_pid if where == "turn" else runs_pid
    assert wait_until(lambda: not alive(spun)), "the Deno with the spinning thread lives on"
    # B's session lives on, in the same Deno, with its state.
    again, b_alive, _ = turn(tenants, "b", "x + 1")
    assert value(again) == 42 and b_alive
    assert deno_pid(tenants, "b") == b_pid != a_pid
    lost, a_alive, _ = turn(tenants, "a-kept", "y")
    if where == "turn":
        # A's other session went with A's Deno.
        assert (lost.status, a_alive) == (Status.INTERNAL_ERROR, False)
        assert tenants.session_end_reason("a-kept") == "crashed"
        tenants.close_session("a-kept")
    else:
        # A run's Deno holds no session: A's session is untouched too.
        assert value(lost) == 1 and a_alive
    # A can go on: a new session, and a run.
    tenants.open_session("a-new", tmp_path / "a-new", 256, tenant="A")
    assert value(turn(tenants, "a-new", "2 + 2")[0]) == 4
    assert value(tenants.run(Job(code="3 + 3"), Sink())) == 6


def test_a_tenants_sessions_share_its_deno_and_runs_have_their_own(
    tenants: TenantRuntimes, tmp_path: Path
) -> None:
    for name, tenant in [("a1", "A"), ("a2", "A"), ("b1", "B"), ("n1", None)]:
        tenants.open_session(name, tmp_path / name, 128, tenant=tenant)
        assert value(turn(tenants, name, f"{name!r}")[0]) == name
    pids = {name: deno_pid(tenants, name) for name in ("a1", "a2", "b1", "n1")}
    assert pids["a1"] == pids["a2"]
    assert len({pids["a1"], pids["b1"], pids["n1"], tenants._runs._pid()}) == 4
    assert tenants.tenant_count == 3
    assert tenants.session_memory_bytes("a1") is not None
    with pytest.raises(ValueError, match="already open"):
        tenants.open_session("a1", tmp_path / "again", 128, tenant="B")


def test_the_warm_deno_is_the_next_tenants(tenants: TenantRuntimes, tmp_path: Path) -> None:
    tenants.open_session("a", tmp_path / "a", 128, tenant="A")
    assert wait_until(lambda: tenants._warm is not None, 60)
    warm = tenants._warm
    assert warm is not None
    tenants.open_session("b", tmp_path / "b", 128, tenant="B")
    assert deno_pid(tenants, "b") == warm._pid()
    assert value(turn(tenants, "b", "1")[0]) == 1
    assert wait_until(lambda: tenants._warm is not None, 60)  # and another is warmed


def test_a_tenants_deno_stops_after_its_last_session_closes(
    pyodide_artifacts: PyodideArtifacts, tmp_path: Path
) -> None:
    tenants = make_tenants(pyodide_artifacts, tmp_path, idle_stop_s=1.0, check_s=0.1)
    try:
        tenants.open_session("a", tmp_path / "a", 128, tenant="A")
        tenants.open_session("b", tmp_path / "b", 128, tenant="A")
        pid = deno_pid(tenants, "a")
        tenants.close_session("a")
        time.sleep(1.5)
        assert alive(pid) and tenants.tenant_count == 1  # "b" is still open
        tenants.close_session("b")
        tenants.open_session("c", tmp_path / "c", 128, tenant="A")  # within the grace
        assert deno_pid(tenants, "c") == pid
        tenants.close_session("c")
        tenants.close_session("c")  # idempotent
        assert wait_until(lambda: tenants.tenant_count == 0)
        assert wait_until(lambda: not alive(pid))
        # A turn for a session the process no longer holds says so.
        report, kept, _ = turn(tenants, "c", "1")
        assert (report.status, kept) == (Status.INTERNAL_ERROR, False)
        assert tenants.session_end_reason("c") == "crashed"
        tenants.open_session("d", tmp_path / "d", 128, tenant="A")
        assert value(turn(tenants, "d", "5")[0]) == 5
    finally:
        tenants.close()


def test_abort_reaches_the_turn_under_way(tenants: TenantRuntimes, tmp_path: Path) -> None:
    tenants.open_session("a", tmp_path / "a", 128, tenant="A")
    result: list[tuple[RunReport, bool]] = []
    job = Job(code="while True:\n    pass", limits=Limits(wall_ms=20_000, cpu_ms=20_000))
    runner = threading.Thread(target=lambda: result.append(tenants.run_turn("a", job, Sink())))
    runner.start()
    time.sleep(1.0)
    tenants.abort(Status.CANCELED)
    runner.join(10)
    assert result and result[0][0].status is Status.CANCELED and not result[0][1]


@pytest.mark.parametrize("spare", [False, True], ids=["no-spare", "tenant-spare"])
def test_a_tenants_deno_keeps_a_spare_only_when_told(
    pyodide_artifacts: PyodideArtifacts, tmp_path: Path, spare: bool
) -> None:
    def make(for_tenant: bool) -> PyodideRuntime:
        return PyodideRuntime(
            pyodide_artifacts.layout, tmp_path / "deno", refill=spare or not for_tenant
        )

    tenants = TenantRuntimes(make)
    try:
        for name in ("a", "b"):
            tenants.open_session(name, tmp_path / name, 128, tenant="A")
            tenants.prepare()
        pid = deno_pid(tenants, "a")
        # The sessions' two workers, and a spare restored behind them when told to.
        assert wait_until(lambda: len(proc.worker_threads(pid)) == 2 + spare)
        time.sleep(0.5)
        assert len(proc.worker_threads(pid)) == 2 + spare
    finally:
        tenants.close()


@pytest.mark.parametrize("spare", [False, True])
def test_the_runner_tells_its_workers_whether_tenants_keep_a_spare(
    pyodide_artifacts: PyodideArtifacts, tmp_path: Path, spare: bool
) -> None:
    pool = create_runner(
        pyodide_artifacts, size=1, scratch_dir=tmp_path, deno_dir=tmp_path, tenant_spare=spare
    )
    assert ("--tenant-spare" in pool._config.command) is spare
    assert pool._config.session_tenants
