"""SANDLOT_WASMTIME_GUEST=stack: runtime "wasmtime" runs the data stack over HTTP (preview)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from sandbox.engines.wasmtime import Artifacts
from tests.conftest import Service, execute
from tests.loopback import LoopbackServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Artifacts
) -> Iterator[httpx.Client]:
    svc = Service(
        tmp_path_factory.mktemp("stack"),
        wasmtime_guest="stack",
        pool_size="2",
        queue_timeout_ms="30000",
        build_on_start="false",
    )
    with svc.client() as c:
        yield c
    svc.close()


def test_pandas_code_runs_and_answers_json(client: httpx.Client) -> None:
    body = execute(
        client,
        "import pandas as pd\n"
        "df = pd.DataFrame({'city': ['a', 'b', 'a'], 'sales': [3, 4, 5]})\n"
        "print(df.shape)\n"
        "df.groupby('city').sales.sum().to_dict()",
    )
    assert body["status"] == "ok", body["error"]
    assert body["engine"] == "wasmtime"
    assert body["stdout"] == "(3, 2)\n"
    assert body["result"]["json"] == {"a": 8, "b": 4}


def test_a_stream_ends_with_end(client: httpx.Client) -> None:
    with client.stream(
        "POST",
        "/v1/execute",
        json={"code": "import numpy as np\nprint(np.arange(3).sum())", "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line.startswith(("event:", "data:"))]
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event:")]
    assert events[0] == "start" and events[-1] == "end"
    stdout = [
        json.loads(lines[i + 1].removeprefix("data: "))
        for i, line in enumerate(lines)
        if line == "event: stdout"
    ]
    assert "".join(item["text"] for item in stdout) == "3\n"


def test_egress_is_the_gates_with_the_stack_too(client: httpx.Client) -> None:
    allowed, canary = LoopbackServer(), LoopbackServer()
    try:
        code = (
            "import sandlot\n"
            f"ok = sandlot.fetch('{allowed.url}/json').json()\n"
            "try:\n"
            f"    sandlot.fetch('{canary.url}/hello')\n"
            "except sandlot.FetchError:\n"
            "    ok['denied'] = True\n"
            "ok"
        )
        body = execute(client, code, allowed_hosts=[allowed.host])
        assert body["result"]["json"] == {"answer": 42, "denied": True}
        assert canary.hit_count == 0
    finally:
        allowed.close()
        canary.close()
