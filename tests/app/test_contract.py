"""The published contract holds: a property-based fuzz of /openapi.json against the service.

schemathesis generates requests from the document (a few per operation, derandomized so
a run is repeatable) and checks every answer: no 5xx but those documented, every status
and content type documented, bodies matching their schemas, 405s naming the methods. It
runs against a service of its own, so the requests it makes touch no other test's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.conftest import ADMIN_KEY, Service

# Operations x examples bounds the run's time; derandomized: the same cases every run.
EXAMPLES = int(os.environ.get("SANDLOT_CONTRACT_EXAMPLES", "5"))
# The schema can't say everything the server checks (an allowed host's syntax, whether a
# namespace exists): a schema-valid request may still be a documented 4xx.
# And a 503 the server documents (no model configured, nothing deployed) is no crash:
# no_crash below replaces not_a_server_error. ignored_auth's probes keep the key sent
# here (test_key_before_body.py and test_namespaces.py send missing and bad keys).
NOT_CHECKED = [positive_data_acceptance, not_a_server_error, ignored_auth]


@schemathesis.check
def no_crash(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case) -> None:
    """A 500 is a crash (the service's catch-all); dispatch's are the worker's own."""
    if response.status_code == 500 and not case.path.startswith("/dispatch/"):
        raise AssertionError(f"{case.method} {case.path} answered 500: {response.text[:500]}")


@pytest.fixture(scope="module")
def contract_service(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[Service]:
    svc = Service(
        tmp_path_factory.mktemp("contract"),
        pool_size="1",
        pyodide_enabled="false",
        build_on_start="false",
        queue_timeout_ms="10000",
    )
    yield svc
    svc.close()


@pytest.mark.slow
def test_every_operation_keeps_the_contract(contract_service: Service) -> None:
    api = schemathesis.openapi.from_url(f"{contract_service.url}/openapi.json")
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    broken: list[str] = []
    for found in api.get_all_operations():
        operation = found.ok()
        # Positive cases must be answered as documented; negative ones must be refused.
        strategy = operation.as_strategy() | operation.as_strategy(GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def holds(case: Case) -> None:
            case.call_and_validate(
                base_url=contract_service.url,
                headers=headers,
                excluded_checks=NOT_CHECKED,
                additional_checks=[no_crash],
            )

        try:
            holds()
        except (Exception, BaseExceptionGroup) as exc:  # every operation's, not the first
            broken.append(f"{operation.label}: {exc}")
    assert broken == [], "\n\n".join(broken)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"code": "1", "stream": "yes"}, "stream"), ({"code": "1", "stream": 0}, "stream")],
    ids=["string", "zero"],
)
def test_booleans_are_strict(client: httpx.Client, body: dict[str, object], field: str) -> None:
    response = client.post("/v1/execute", json=body)
    assert response.status_code == 422, response.text
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_a_405_lists_every_method_of_the_path(client: httpx.Client) -> None:
    # GET, PATCH and DELETE of /v1/namespaces/{name} are three routes: Allow names all.
    response = client.post("/v1/namespaces/some-namespace")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "PATCH", "DELETE"}


def test_a_body_that_is_not_utf8_is_a_documented_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/execute", content=b'{"code": "\xff"}', headers={"content-type": "application/json"}
    )
    assert response.status_code in (400, 422), response.text
    documented = client.get("/openapi.json").json()["paths"]["/v1/execute"]["post"]
    assert str(response.status_code) in documented["responses"]
    assert response.json()["error"]["message"]
