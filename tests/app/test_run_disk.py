"""A run's files (its working directory and its /tmp) are held to SANDLOT_RUN_DISK_MB while
the code runs.

Without it a run could write for its whole wall_ms (1-3 GiB/s into the scratch directory,
BENCHMARKS.md) and fill the service's disk. The real service, with a 1 MiB limit.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Service

pytestmark = pytest.mark.usefixtures("artifacts")

WRITERS = {
    "one-big-file": "chunk = b'x' * (1024 * 1024)\nwith open('big.bin', 'wb') as f:\n"
    "    while True:\n        f.write(chunk)\n",
    "many-small-files": "i = 0\nwhile True:\n    open(f'f{i}.bin', 'wb').write(b'x' * 4096)\n"
    "    i += 1\n",
    "into-tmp": "chunk = b'x' * (1024 * 1024)\nwith open('/tmp/big.bin', 'wb') as f:\n"
    "    while True:\n        f.write(chunk)\n",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    service = Service(
        tmp_path_factory.mktemp("run-disk"),
        pool_size="1",
        pyodide_enabled="false",
        build_on_start="false",
        run_disk_mb="1",
    )
    try:
        with service.client() as admin:
            yield admin
    finally:
        service.close()


@pytest.mark.parametrize("code", WRITERS.values(), ids=WRITERS.keys())
def test_a_run_writing_past_its_disk_limit_is_stopped_while_it_runs(
    client: httpx.Client, code: str
) -> None:
    answer = client.post("/v1/execute", json={"code": code, "limits": {"wall_ms": 20_000}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "error", body
    assert body["error"]["type"] == "DiskQuotaExceeded"
    assert "1048576 bytes (SANDLOT_RUN_DISK_MB)" in body["error"]["message"]
    assert body["usage"]["wall_ms"] < 10_000  # the watch stopped it, not the clock
    # The next run in the same worker starts with empty directories and runs.
    code = "import os\nprint(os.listdir('.'), os.listdir('/tmp'))"
    after = client.post("/v1/execute", json={"code": code})
    assert after.json()["stdout"] == "[] []\n"


def test_a_run_under_its_disk_limit_keeps_its_files(client: httpx.Client) -> None:
    code = "open('half.bin', 'wb').write(b'x' * 512 * 1024)\nprint('written')"
    body = client.post("/v1/execute", json={"code": code, "return_files": ["half.bin"]}).json()
    assert body["status"] == "ok", body
    assert [(f["path"], f["size"]) for f in body["files"]] == [("half.bin", 512 * 1024)]
