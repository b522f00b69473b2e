"""A job's ``files`` on both engines (issue 11, finding 11).

``{"a": "x", "a/b": "y"}`` used to crash the wasmtime worker process (``internal_error`` and a
respawn; a loop of them slowed every other tenant). Such a request is now a 422 naming both
paths, and no worker process is touched.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conformance.conftest import Run
from tests.conftest import Service


# Paths are checked before any engine sees the job; the two runtimes suffice.
@pytest.fixture(params=["wasmtime", "pyodide"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize(
    ("files", "field", "message_names"),
    [
        pytest.param({"a": "x", "a/b": "y"}, "files.a/b", ["'a'", "'a/b'"], id="file-then-dir"),
        pytest.param({"a/b": "y", "a": "x"}, "files.a/b", ["'a'", "'a/b'"], id="dir-then-file"),
        pytest.param({"d/e": "1", "d/e/f/g": "2"}, "files.d/e/f/g", ["'d/e'"], id="deep"),
        pytest.param({"a/./b": "x"}, "files.a/./b", ["relative path"], id="dot-part"),
        pytest.param({"a//b": "x"}, "files.a//b", ["relative path"], id="double-slash"),
        pytest.param({"a/": "x"}, "files.a/", ["relative path"], id="trailing-slash"),
        pytest.param({"é" * 128: "x"}, "files." + "é" * 128, ["255 UTF-8 bytes"], id="long-part"),
    ],
)
def test_conflicting_or_odd_paths_are_a_422(
    client: httpx.Client,
    service: Service,
    engine: str,
    files: dict[str, str],
    field: str,
    message_names: list[str],
) -> None:
    workers = service.worker_pids()
    for _ in range(3):  # a loop of these used to respawn a worker each time
        response = client.post(
            "/v1/execute", json={"code": "print('ran')", "runtime": engine, "files": files}
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        [detail] = error["details"]
        assert detail["field"] == field
        for name in message_names:
            assert name in detail["message"]
    assert service.worker_pids() == workers


def test_files_in_nested_directories_reach_the_guest(run: Run) -> None:
    files = {
        "a": "top",
        "b/c": "nested",
        "b/d/e.bin": {"content": "AAEC/w==", "encoding": "base64"},
        "B/c": "case differs",
    }
    code = (
        "import os\n"
        "[open('a').read(), open('b/c').read(), list(open('b/d/e.bin', 'rb').read()),\n"
        " open('B/c').read(), sorted(os.listdir('b'))]"
    )
    body = run(code, files=files)
    assert body["status"] == "ok", body
    assert body["result"]["json"] == ["top", "nested", [0, 1, 2, 255], "case differs", ["c", "d"]]


def test_lone_surrogate_path_is_a_422(client: httpx.Client, engine: str) -> None:
    # JSON may spell a lone surrogate; no file system can name a file with it.
    content = '{"code": "1", "runtime": "ENGINE", "files": {"a\\ud800": "x"}}'
    content = content.replace("ENGINE", engine)
    response = client.post(
        "/v1/execute", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "files.a\\ud800"
