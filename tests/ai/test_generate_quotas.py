"""/v1/generate's runs go through the quotas like /v1/execute's (app/runs.start_run): a key's
namespace at its concurrent_runs quota gets no generated run (the generation ends failed with
quota_reached, for one-shot code and for a worker alike), and the runs it did make count to the
namespace's usage."""

from __future__ import annotations

import secrets
import threading

import httpx

from tests.ai.fake_model import FakeModel, Reply
from tests.ai.test_generate import WORKER
from tests.conftest import Service


def _scoped(service: Service, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=service.url, timeout=120, headers={"authorization": f"Bearer {key}"}
    )


def test_generate_runs_count_against_quotas_and_usage(
    ai: httpx.Client, ai_service: Service, fake_model: FakeModel
) -> None:
    namespace = "gq-" + secrets.token_hex(4)
    made = ai.post("/v1/namespaces", json={"name": namespace, "quotas": {"concurrent_runs": 1}})
    assert made.status_code == 201, made.text
    key = ai.post(f"/v1/namespaces/{namespace}/keys", json={}).json()["key"]
    started = threading.Event()
    release = threading.Event()
    held: list[str] = []

    def hold() -> None:
        # One run of the namespace, in flight until the test has tried to generate.
        code = "import time\nfor _ in range(90):\n    time.sleep(0.1)\n"
        with (
            _scoped(ai_service, key) as client,
            client.stream(
                "POST",
                "/v1/execute",
                json={"code": code, "stream": True},
            ) as stream,
        ):
            assert stream.status_code == 200, stream.read()
            for line in stream.iter_lines():
                if line.startswith("event: start"):
                    started.set()
                    release.wait(60)
                    break
        held.append("done")

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert started.wait(60), held
        with _scoped(ai_service, key) as client:
            fake_model.reset(Reply.code("print('hi')"))
            one_shot = client.post("/v1/generate", json={"task": "Say hi."})
            fake_model.reset(Reply.code(WORKER))
            worker = client.post(
                "/v1/generate", json={"task": "Hello.", "namespace": namespace, "worker": "w"}
            )
        for answer in (one_shot, worker):
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["status"] == "failed", body
            assert body["error"]["type"] == "quota_reached"
            assert "concurrent_runs = 1" in body["error"]["message"]
            assert body["attempts"] == 1  # not the code's fault: no repair
        # The refused worker generation was rolled back.
        assert ai.get(f"/v1/namespaces/{namespace}/workers/w").status_code == 404
    finally:
        release.set()  # the held stream closes: its run is canceled
        thread.join(60)
    assert held == ["done"]
    with _scoped(ai_service, key) as client:
        fake_model.reset(Reply.code("print('hi')"))
        deadline_answers = [client.post("/v1/generate", json={"task": "Say hi."}) for _ in range(3)]
        ok = [a for a in deadline_answers if a.json()["status"] == "ok"]
        assert ok, [a.json() for a in deadline_answers]
        usage = client.get(f"/v1/namespaces/{namespace}/usage").json()["total"]
    # The held run and the generated ones that ran; the refused ones never started.
    assert usage["runs"] == 1 + len(ok)
    assert usage["dispatches"] == 0
