"""Credentials in guest URLs reach neither subrequest records nor the service log, on both
engines (issue 11, finding 13). The upstream still gets the URL the guest asked for.
"""

from __future__ import annotations

import json
import secrets

from tests.conformance.conftest import Run
from tests.conftest import Service
from tests.loopback import LoopbackServer


def test_credentials_in_urls_are_not_recorded_or_logged(
    run: Run, service: Service, loopback: LoopbackServer
) -> None:
    secret = f"pw{secrets.token_hex(8)}"
    urls = [
        # Malformed: refused, and the old redaction kept the password of each.
        f"http://user:{secret}\\@{loopback.host}/hello",
        f"http:/user:{secret}@{loopback.host}/hello",
        f"http:\\\\user:{secret}@{loopback.host}/hello",
        f"http://user:{secret}@[bad/",
        # Allowed: the query reaches the upstream, not the record.
        f"{loopback.url}/hello?api_key={secret}&page=2",
    ]
    code = (
        "from sandlot import fetch, FetchError\n"
        "out = []\n"
        f"for url in {urls!r}:\n"
        "    try:\n"
        "        out.append(fetch(url).status)\n"
        "    except FetchError:\n"
        "        out.append('refused')\n"
        "out"
    )
    body = run(code, allowed_hosts=[loopback.host])
    assert body["status"] == "ok", body
    assert body["result"]["json"] == ["refused"] * 4 + [200]
    assert loopback.hits == [("GET", f"/hello?api_key={secret}&page=2")]
    records = body["subrequests"]
    assert records[-1]["url"] == f"{loopback.url}/hello?api_key=REDACTED&page=2"
    assert secret not in json.dumps(records)
    assert secret not in service.log()
