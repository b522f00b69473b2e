"""Pyodide sessions of one namespace can't end another namespace's, over HTTP.

Code whose Web Worker thread Deno can't stop (a JavaScript built-in running over a huge
array) makes the driver restart the Deno process it is in. Two namespaces' keys (and the
admin's) against a real service with one Pyodide worker process, so every session is in
the same process: namespace A's spinning code ends A's own sessions (``crashed``), never
B's or the admin's, and A can go on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.app.test_sessions import error_of, open_session, tenant, turn
from tests.conftest import Service
from tests.engines.test_pyodide_tenants import SPINS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("pyodide_artifacts")]


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(
        tmp_path_factory.mktemp("tenants"),
        pool_size="1",
        pyodide_pool_size="1",
        queue_timeout_ms="30000",
        build_on_start="false",
        session_sweep_ms="100",
    )
    yield service
    service.close()


@pytest.fixture(scope="module")
def admin(svc: Service) -> Iterator[httpx.Client]:
    with svc.client() as client:
        yield client


@pytest.mark.parametrize("where", ["turn", "run"])
@pytest.mark.parametrize("spin", list(SPINS))
def test_a_namespace_that_spins_ends_only_its_own_sessions(
    svc: Service, admin: httpx.Client, spin: str, where: str
) -> None:
    with tenant(admin, svc, "pyodide") as a, tenant(admin, svc, "pyodide") as b:
        # B's and the admin's sessions, opened first, in the one Pyodide worker process.
        theirs = open_session(b)
        assert turn(b, theirs, "x = 41\nx")["result"]["json"] == 41
        admins = open_session(admin, runtime="pyodide")
        assert turn(admin, admins, "z = 7\nz")["result"]["json"] == 7
        kept = open_session(a)
        assert turn(a, kept, "y = 1\ny")["result"]["json"] == 1
        if where == "turn":
            spinner = open_session(a)
            answer = turn(a, spinner, SPINS[spin], limits={"wall_ms": 1000})
            assert answer["session"] == {
                "id": spinner,
                "state": "ended",
                "ended_reason": "wall_limit",
            }
        else:
            answer = a.post(
                "/v1/execute",
                json={"code": SPINS[spin], "runtime": "pyodide", "limits": {"wall_ms": 1000}},
            ).json()
        assert answer["status"] == "wall_limit", answer
        assert "spinning" in answer["stdout"]
        # Past the driver's grace for a thread to end (1 s) and its next look (1 s).
        time.sleep(2.5)
        again = turn(b, theirs, "x + 1")
        assert (again["status"], again["session"]["state"]) == ("ok", "open"), again
        assert again["result"]["json"] == 42
        assert turn(admin, admins, "z")["result"]["json"] == 7
        mine = turn(a, kept, "y")
        if where == "turn":
            # A's other session went with A's Deno process: crashed, then 410.
            assert mine["session"]["ended_reason"] == "crashed", mine
            assert "crashed" in error_of(
                a.post(f"/v1/sessions/{kept}/execute", json={"code": "y"}), 410
            )
        else:
            # Runs have a Deno of their own, which holds no session.
            assert mine["result"]["json"] == 1
        # A goes on: a new session, and a run.
        fresh = open_session(a)
        assert turn(a, fresh, "2 + 2")["result"]["json"] == 4
        run = a.post("/v1/execute", json={"code": "3 + 3", "runtime": "pyodide"}).json()
        assert run["result"]["json"] == 6
        for client, session_id in [(b, theirs), (admin, admins), (a, fresh), (a, kept)]:
            assert client.delete(f"/v1/sessions/{session_id}").status_code in (204, 410)
