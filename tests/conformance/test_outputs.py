"""Rich outputs and return_files on both engines (issue 12, items 4 and 5).

The component guest and Pyodide have no matplotlib: ``sandlot.display`` and trailing values
with IPython's display methods come back, streamed as they are made (the component's
``display`` host import; a Pyodide worker message), and checked by the host either way.
Files come back from the host's work dir (wasmtime) or from the guest's in-memory file
system, checked again (Pyodide).
Charts on the data-stack guest are in tests/app/test_stack_outputs.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from tests.conformance.conftest import Run

RICH = (
    "import sandlot\n"
    "class Card:\n"
    "    def _repr_html_(self):\n"
    "        return '<b>card</b>'\n"
    "print('before')\n"
    "sandlot.display(b'\\x89PNG', mime_type='image/png')\n"
    "Card()"
)


def test_displays_and_a_trailing_rich_value_come_back(run: Run) -> None:
    body = run(RICH)
    assert body["status"] == "ok", body
    assert body["stdout"] == "before\n"
    assert body["outputs"] == [
        {"mime_type": "image/png", "data": base64.b64encode(b"\x89PNG").decode()},
        {"mime_type": "text/html", "data": "<b>card</b>"},
    ]
    assert body["result"]["repr"].startswith("<__main__.Card object")


def test_a_mime_type_outside_the_allowlist_is_the_codes_error(run: Run) -> None:
    body = run("import sandlot\nsandlot.display('x', mime_type='application/x-evil')")
    assert body["status"] == "error"
    assert body["error"]["type"] == "ValueError"


def test_forged_outputs_in_the_outcome_are_refused(run: Run) -> None:
    # Guest code can reach the glue's pending list; the host checks what it hands back.
    code = (
        "import sandlot._outputs as o\n"
        "o._pending.append({'mime_type': 'image/png', 'data': 'not base64!'})\n"
    )
    body = run(code)
    assert body["status"] == "error"
    assert body["error"]["type"] == "SandboxOutputError"
    assert body["outputs"] == []


def test_outputs_count_against_output_bytes(run: Run) -> None:
    code = "import sandlot\nsandlot.display('x' * 5000, mime_type='text/plain')"
    body = run(code, limits={"output_bytes": 1000})
    assert body["status"] == "output_limit"
    assert body["outputs"] == []
    assert body["output_truncated"] is True


def test_files_come_back_by_glob(run: Run) -> None:
    code = (
        "import os\n"
        "os.makedirs('charts/deep', exist_ok=True)\n"
        "open('a.csv', 'w').write('x,y\\n')\n"
        "open('notes.txt', 'w').write('no')\n"
        "open('charts/c.png', 'wb').write(b'\\x89PNG')\n"
        "open('charts/deep/d.png', 'wb').write(b'deep')\n"
        "open('big.csv', 'wb').write(b'z' * 3000)\n"
    )
    body = run(code, return_files=["*.csv", "charts/*.png"])
    assert body["status"] == "ok", body
    files = body["files"]
    assert [f["path"] for f in files] == ["a.csv", "big.csv", "charts/c.png"]
    assert base64.b64decode(files[0]["data"]) == b"x,y\n"
    assert files[0]["mime_type"] == "text/csv" and files[2]["mime_type"] == "image/png"
    assert files[1]["size"] == 3000 and files[1]["truncated"] is False


def test_a_symlink_out_is_not_returned(run: Run) -> None:
    code = (
        "import os\n"
        "for target, name in (('/etc/passwd', 'p.csv'), ('/etc', 'etcdir')):\n"
        "    try:\n"
        "        os.symlink(target, name)\n"
        "    except OSError:\n"
        "        pass\n"
        "open('ok.csv', 'w').write('1')\n"
    )
    body = run(code, return_files=["*.csv", "etcdir/*", "**/passwd"])
    assert body["status"] == "ok", body
    assert [f["path"] for f in body["files"]] == ["ok.csv"]


@pytest.mark.parametrize(
    ("patterns", "field"),
    [
        pytest.param(["*.csv", "/etc/passwd"], "return_files[1]", id="absolute"),
        pytest.param(["../*"], "return_files[0]", id="dotdot"),
        pytest.param(["a//b"], "return_files[0]", id="empty-part"),
    ],
)
def test_bad_globs_are_a_422_naming_the_index(
    engine_client: httpx.Client, runtime: str, patterns: list[str], field: str
) -> None:
    response = engine_client.post(
        "/v1/execute", json={"code": "1", "runtime": runtime, "return_files": patterns}
    )
    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == field
    assert "relative glob" in detail["message"]


def test_figure_format_outside_png_and_svg_is_a_422(
    engine_client: httpx.Client, runtime: str
) -> None:
    response = engine_client.post(
        "/v1/execute", json={"code": "1", "runtime": runtime, "figure_format": "gif"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "figure_format"


def _stream(client: httpx.Client, code: str, engine: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    body = {"code": code, "runtime": engine, "stream": True}
    with client.stream("POST", "/v1/execute", json=body) as response:
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def test_displays_stream_in_order_with_stdout(engine_client: httpx.Client, runtime: str) -> None:
    code = (
        "import sandlot\n"
        "print('before')\n"
        "sandlot.display('<i>1</i>', mime_type='text/html')\n"
        "print('after')\n"
    )
    events = _stream(engine_client, code, runtime)
    shown = [(n, d.get("text", d.get("data"))) for n, d in events if n in ("stdout", "display")]
    assert shown == [("stdout", "before\n"), ("display", "<i>1</i>"), ("stdout", "after\n")]
    assert events[-1][0] == "end" and events[-1][1]["status"] == "ok"


def test_a_forged_display_is_the_runs_error(run: Run, engine: str) -> None:
    # Past sandlot.display's own checks, straight to the host's channel.
    if engine == "wasmtime":
        code = (
            "import _host, json\n"
            "frame = {'op': 'display', 'mime_type': 'application/x-evil', 'data': 'x'}\n"
            "json.loads(_host.call(json.dumps(frame).encode()))\n"
        )
        body = run(code)
        assert body["outputs"] == []
        assert "can't be displayed" in body["result"]["json"]["error"]
        return
    if engine == "component":
        code = (
            "from wit_world.imports import host\n"
            "try:\n"
            "    host.display('application/x-evil', 'x')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc.value)\n"
            "host.display('image/png', 'not base64!')\n"
        )
        body = run(code)
        assert body["status"] == "error" and body["outputs"] == []
        assert body["stdout"].startswith("Err mime_type 'application/x-evil' can't be displayed")
        assert "not valid base64" in str(body["error"]["message"]) + body["stderr"]
        return
    code = (
        "import js\n"
        "from pyodide.ffi import to_js\n"
        "js.postMessage(to_js({'t': 'display', 'm': 'application/x-evil', 'd': 'x'},"
        " dict_converter=js.Object.fromEntries))\n"
        "print('still ran')\n"
    )
    body = run(code)
    assert body["status"] == "error"
    assert body["error"]["type"] == "SandboxOutputError"
    assert "can't be displayed" in body["error"]["message"]
    assert body["outputs"] == []
