"""Pure-Python packages on every engine that has them: installed ahead, loaded offline.

`make build` installs pyodide-runtime/packages.txt into Pyodide's lock file and
sandbox/engines/stack/packages.txt into the data-stack guest's site directory
(requests, faker, pytz, holidays, ...). The component guest has none.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conformance.conftest import Run, engine_gap
from tests.conftest import execute
from tests.loopback import LoopbackServer


def test_default_packages_import_and_work(run: Run, engine: str) -> None:
    engine_gap(engine, "component", "no packages (the data-stack guest has them)")
    code = (
        "import datetime\n"
        "from faker import Faker\n"
        "import holidays, pytz\n"
        "Faker.seed(7)\n"
        "fake = Faker()\n"
        "name, email = fake.name(), fake.email()\n"
        "us = holidays.US(years=2024)\n"
        "paris = pytz.timezone('Europe/Paris')\n"
        "noon = paris.localize(datetime.datetime(2024, 7, 1, 12))\n"
        "[bool(name), '@' in email, us.get(datetime.date(2024, 7, 4)),\n"
        " datetime.date(2024, 12, 25) in us, noon.utcoffset().total_seconds()]"
    )
    body = run(code)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == [True, True, "Independence Day", True, 7200.0]


def test_requirements_on_the_stack_accept_installed_and_built_in_packages(
    client: httpx.Client,
) -> None:
    code = "import faker, numpy\nfaker.Faker().name() != '' and int(numpy.arange(4).sum())"
    body = execute(client, code, runtime="wasmtime", requirements=["Faker", "numpy", "pytz"])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == 6


def test_missing_requirement_on_the_stack_is_a_422_saying_how_to_add_it(
    client: httpx.Client,
) -> None:
    response = client.post(
        "/v1/execute",
        json={"code": "1", "runtime": "wasmtime", "requirements": ["faker", "no-such-thing"]},
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["details"][0]["field"] == "requirements"
    assert "no-such-thing" in error["message"] and "make packages" in error["message"]
    assert "faker" not in error["message"].split(":")[1]


def test_installed_packages_never_shadow_built_in_ones(client: httpx.Client) -> None:
    code = (
        "import dateutil, jinja2, requests, faker\n"
        "[m.__file__.split('/')[4] for m in (dateutil, jinja2, requests, faker)]"
    )
    body = execute(client, code, runtime="wasmtime")
    assert body["status"] == "ok", body
    # The stack's zip, then the installed site directory.
    assert body["result"]["json"] == ["python315.zip"] * 2 + ["python3.15"] * 2


def test_missing_module_error_lists_installed_packages(client: httpx.Client) -> None:
    body = execute(client, "import no_such_module", runtime="wasmtime")
    assert body["error"]["type"] == "ModuleNotFoundError"
    assert "faker" in body["error"]["message"] and "make packages" in body["error"]["message"]


@pytest.mark.parametrize("module", ["requests", "faker", "holidays"])
def test_installed_packages_load_from_bytecode(client: httpx.Client, module: str) -> None:
    code = (
        "import importlib.util, os\n"
        f"spec = importlib.util.find_spec({module!r})\n"
        "os.path.exists(importlib.util.cache_from_source(spec.origin))"
    )
    body = execute(client, code, runtime="wasmtime")
    assert body["status"] == "ok", body
    assert body["result"]["json"] is True


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


def test_requirements_on_the_component_say_which_engines_load_packages(
    _component_client: httpx.Client,
) -> None:
    response = _component_client.post(
        "/v1/execute", json={"code": "1", "runtime": "wasmtime", "requirements": ["idna"]}
    )
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "pyodide" in message and "data-stack" in message


def test_uninstalled_import_fails_cleanly(client: httpx.Client) -> None:
    body = execute(client, "import numpy", runtime="pyodide")
    assert body["status"] == "error"
    assert body["error"]["type"] == "ModuleNotFoundError"
