"""Pure-Python packages on the Pyodide engine: installed ahead, loaded offline, gated egress.

`make build` installs pyodide-runtime/packages.txt (requests and its dependencies).
"""

from __future__ import annotations

import httpx

from tests.conftest import execute
from tests.loopback import LoopbackServer


def test_requests_works_and_goes_through_the_gate(
    client: httpx.Client, loopback: LoopbackServer, canary: LoopbackServer
) -> None:
    code = (
        "import requests\n"
        f"r = requests.get('{loopback.url}/json', timeout=5)\n"
        "try:\n"
        f"    requests.get('{canary.url}/hello', timeout=5)\n"
        "    refused = False\n"
        "except Exception as exc:\n"
        "    refused = True\n"
        "[r.status_code, r.json(), refused]"
    )
    body = execute(client, code, runtime="pyodide", allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body["error"]
    assert body["result"]["json"] == [200, {"answer": 42}, True]
    assert loopback.hit_count == 1
    assert canary.hit_count == 0


def test_named_requirements_load_before_the_code(client: httpx.Client) -> None:
    # The code never names idna, so only the requirement can have installed it.
    code = "import importlib.util\nimportlib.util.find_spec('idna') is not None"
    assert execute(client, code, runtime="pyodide", requirements=["idna"])["result"]["json"]
    assert not execute(client, code, runtime="pyodide")["result"]["json"]


def test_missing_requirement_is_a_422_naming_it(client: httpx.Client) -> None:
    response = client.post(
        "/v1/execute",
        json={"code": "1", "runtime": "pyodide", "requirements": ["idna", "numpy"]},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "requirements"
    assert "numpy" in error["message"] and "idna" not in error["message"].split(":")[-2]


def test_requirements_on_wasmtime_say_which_runtime_loads_packages(client: httpx.Client) -> None:
    response = client.post(
        "/v1/execute", json={"code": "1", "runtime": "wasmtime", "requirements": ["idna"]}
    )
    assert response.status_code == 422
    assert "pyodide" in response.json()["error"]["message"]


def test_uninstalled_import_fails_cleanly(client: httpx.Client) -> None:
    body = execute(client, "import numpy", runtime="pyodide")
    assert body["status"] == "error"
    assert body["error"]["type"] == "ModuleNotFoundError"
