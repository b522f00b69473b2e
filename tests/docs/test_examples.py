"""The README's and docs/'s examples, run as a reader would, against a live service on loopback.

Examples rotted before (a worker upload into a namespace never created, an egress
example that could not resolve, a variable no other example set). Every ``sh`` and
``python`` block of README.md and docs/*.md runs here, in document order, unless the
line before it says otherwise:

- ``<!-- doctest: skip: why -->``: not run (it needs a model, the internet, or it starts
  the service); the reason is required.
- ``<!-- doctest: background PORT -->``: started in the background (a server the next
  examples use), and stopped after the document; the next block waits for PORT.

Shell blocks run with bash (``set -euo pipefail``) in a directory whose
``var/admin-key`` holds the service's admin key, with ``KEY`` set to it, and with
``curl`` failing on an HTTP error status (``--fail-with-body``); a ``/v1/execute`` answer
whose run did not end ``ok`` fails too. Python blocks run each in its own interpreter
with ``SANDLOT_URL`` and ``SANDLOT_API_KEY`` set and ``sandlot = Sandlot()`` defined.
The documents' ``localhost:8000`` is the service under test. Between documents, every
namespace the examples made is deleted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sandbox.engines.pyodide import PyodideArtifacts
from sandbox.engines.wasmtime import Artifacts
from tests.conftest import ADMIN_KEY, ROOT, Service

pytestmark = pytest.mark.slow

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = ("sh", "python")
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*doctest:\s*(?P<kind>skip|background)\b:?\s*(?P<arg>.*?)\s*-->$")
ADDRESS = re.compile(r"(?:localhost|127\.0\.0\.1):8000")
PRELUDE = "from sandlot_client import Sandlot\n\nsandlot = Sandlot()\n\n"
BLOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class Example:
    document: Path
    line: int
    lang: str
    code: str
    kind: str | None = None  # skip, background
    arg: str = ""

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def examples(document: Path) -> list[Example]:
    """The fenced sh and python blocks, with the marker on the line before each."""
    lines = document.read_text().split("\n")
    found: list[Example] = []
    index = 0
    while index < len(lines):
        opened = FENCE.match(lines[index])
        if opened is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        lang = opened.group(1)
        if lang in RUN:
            mark = MARK.match(lines[index - 1].strip()) if index else None
            found.append(
                Example(
                    document,
                    index + 1,
                    lang,
                    "\n".join(lines[index + 1 : end]) + "\n",
                    mark.group("kind") if mark else None,
                    mark.group("arg") if mark else "",
                )
            )
        index = end + 1
    return found


def test_every_marker_is_well_formed() -> None:
    for document in DOCUMENTS:
        text = document.read_text()
        assert text.count("doctest:") == len([e for e in examples(document) if e.kind]), (
            f"{document}: a doctest marker that is not right before an sh/python block"
        )
        for example in examples(document):
            if example.kind == "skip":
                assert example.arg, f"{example.where}: say why it is skipped"
            if example.kind == "background":
                assert example.arg.isdigit(), f"{example.where}: background needs a PORT"


@pytest.fixture(scope="module")
def docs_service(
    tmp_path_factory: pytest.TempPathFactory,
    artifacts: Artifacts,
    pyodide_artifacts: PyodideArtifacts,
) -> Iterator[Service]:
    # As `make serve` runs, plus what the documents tell the operator to set: loopback
    # opened to guests (README's egress example) and a dispatch domain (docs/workers.md).
    svc = Service(
        tmp_path_factory.mktemp("docs-service"),
        pool_size="2",
        pyodide_pool_size="1",
        queue_timeout_ms="30000",
        build_on_start="false",
        dispatch_domain="workers.example",
        egress_private_networks="127.0.0.1/32",
    )
    yield svc
    svc.close()


def _wait_for_port(port: int, process: subprocess.Popen[bytes], where: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{where}: the background example exited ({process.returncode})")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"{where}: nothing listened on port {port}")


def _failed_runs(stdout: str) -> list[str]:
    """/v1/execute answers in the output whose run did not end ok."""
    failed = []
    for text in re.findall(r"^\{.*\}$", stdout, flags=re.MULTILINE):
        try:
            answer = json.loads(text)
        except ValueError:
            continue
        if isinstance(answer, dict) and "engine" in answer and answer.get("status") != "ok":
            failed.append(text[:2000])
    return failed


def _run(example: Example, cwd: Path, env: dict[str, str], url: str) -> None:
    code = ADDRESS.sub(url.removeprefix("http://"), example.code)
    if example.lang == "sh":
        script = (
            "set -euo pipefail\n"
            'curl() { command curl --fail-with-body --max-time 240 "$@"; }\n' + code
        )
        argv = ["bash", "-c", script]
    else:
        path = cwd / f"example_{example.line}.py"
        path.write_text(PRELUDE + code)
        argv = [sys.executable, str(path)]
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )
    assert done.returncode == 0, (
        f"{example.where} ({example.lang}) exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
    failed = _failed_runs(done.stdout)
    assert not failed, f"{example.where}: a run in the example did not end ok: {failed}"


def _clean(service: Service) -> None:
    with service.client() as admin:
        for space in admin.get("/v1/namespaces", params={"limit": 1000}).json()["namespaces"]:
            admin.delete(f"/v1/namespaces/{space['name']}", params={"force": "true"})


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_the_documents_examples_run(document: Path, docs_service: Service, tmp_path: Path) -> None:
    found = [example for example in examples(document) if example.kind != "skip"]
    if not found:
        pytest.skip("no runnable examples")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "admin-key").write_text(ADMIN_KEY + "\n")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SANDLOT_", "OPENAI_"))},
        "KEY": ADMIN_KEY,
        "SANDLOT_URL": docs_service.url,
        "SANDLOT_API_KEY": ADMIN_KEY,
        # This checkout's sandlot_client, whatever the environment has installed.
        "PYTHONPATH": str(ROOT),
    }
    background: list[subprocess.Popen[bytes]] = []
    try:
        for example in found:
            if example.kind == "background":
                process = subprocess.Popen(
                    ["bash", "-c", example.code],
                    cwd=tmp_path,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                background.append(process)
                _wait_for_port(int(example.arg), process, example.where)
            else:
                _run(example, tmp_path, env, docs_service.url)
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
        _clean(docs_service)


def test_a_failing_example_fails(docs_service: Service, tmp_path: Path) -> None:
    """The runner itself: an HTTP error and a run that raised both fail the example."""
    env = {**os.environ, "KEY": ADMIN_KEY}
    refused = Example(ROOT / "README.md", 1, "sh", "curl -s localhost:8000/v1/namespaces/nope\n")
    with pytest.raises(AssertionError, match="exited 22"):
        _run(refused, tmp_path, env, docs_service.url)
    raised = Example(
        ROOT / "README.md",
        1,
        "sh",
        'curl -s localhost:8000/v1/execute -H "authorization: Bearer $KEY" '
        "-H 'content-type: application/json' -d '{\"code\": \"1/0\"}'\n",
    )
    with pytest.raises(AssertionError, match="did not end ok"):
        _run(raised, tmp_path, env, docs_service.url)
    assert httpx.get(docs_service.url + "/healthz").status_code == 200
