"""app/access_log.py: the service log carries no credentials from request URLs
(issue 11, finding 13).
"""

from __future__ import annotations

import logging
import secrets
import time

import httpx

from app.access_log import RedactTargets
from tests.conftest import Service

SECRET = "hunter2"


def test_filter_redacts_the_request_target() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/dispatch/ns/w?api_key={SECRET}&page=2", "1.1", 200),
        None,
    )
    assert RedactTargets().filter(record)
    assert SECRET not in record.getMessage()
    assert "/dispatch/ns/w?api_key=REDACTED&page=2" in record.getMessage()


def test_filter_leaves_other_records_alone() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s", ("x",), None)
    assert RedactTargets().filter(record)
    assert record.args == ("x",)


def _wait_for_log(service: Service, text: str, timeout: float = 10) -> str:
    # The access line is written just after the response: poll for it, don't guess a delay.
    deadline = time.monotonic() + timeout
    while True:
        log = service.log()
        if text in log or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def test_service_access_log_has_no_query_credentials(
    service: Service, client: httpx.Client
) -> None:
    secret = f"tok{secrets.token_hex(8)}"
    probe = secrets.token_hex(4)
    client.get(f"/healthz?token={secret}&probe={probe}")
    log = _wait_for_log(service, f"probe={probe}")
    assert f"/healthz?token=REDACTED&probe={probe}" in log
    assert secret not in log
