"""A worker's build compiles it once; dispatch runs that bytecode, or the source if it can't.

Driven through /v1/execute with the same job dispatch sends (``workers._serve``),
with files that make it visible which one ran: the source says "source", the
bytecode was compiled from code that says "bytecode".
"""

from __future__ import annotations

import base64
import json

from app.builds import CHECK_PROGRAM
from app.dispatch import entry_job_fields
from tests.conformance.conftest import Run

SOURCE = "from workers import Response\ndef on_fetch(request, env):\n    return Response({})\n"
HELPER = "WHO = {}\n"
USES_HELPER = (
    "from workers import Response\nfrom helper import WHO\n"
    "def on_fetch(request, env):\n    return Response(WHO)\n"
)


def _bytecode(run: Run, modules: dict[str, str]) -> dict[str, str]:
    """What the build program compiles for these modules on this engine (base64 .pyc)."""
    upload = json.dumps({"modules": modules, "main": "main.py"})
    report = run(CHECK_PROGRAM, stdin=upload)["result"]["json"]
    assert report["errors"] == []
    return dict(report["bytecode"])


def _serve(run: Run, files: dict[str, str | bytes]) -> str:
    job = entry_job_fields(
        main_module="main.py", method="GET", url="/", headers=[], body=b"", bindings={}
    )
    sent = {
        name: {"content": base64.b64encode(data).decode(), "encoding": "base64"}
        if isinstance(data, bytes)
        else data
        for name, data in files.items()
    }
    body = run(job["code"], stdin=job["stdin"], env=job["env"], files=sent)
    assert body["status"] == "ok", body
    return base64.b64decode(body["result"]["json"]["body"]).decode()


def test_the_main_module_runs_from_its_bytecode(run: Run) -> None:
    compiled = _bytecode(run, {"main.py": SOURCE.format("'bytecode'")})
    [(path, pyc)] = compiled.items()
    assert path.startswith("__pycache__/main.") and path.endswith(".pyc")
    files: dict[str, str | bytes] = {"main.py": SOURCE.format("'source'")}
    assert _serve(run, files) == "source"
    assert _serve(run, {**files, path: base64.b64decode(pyc)}) == "bytecode"


def test_bytecode_of_another_python_falls_back_to_the_source(run: Run) -> None:
    [(path, pyc)] = _bytecode(run, {"main.py": SOURCE.format("'bytecode'")}).items()
    foreign = b"\x00\x00\r\n" + base64.b64decode(pyc)[4:]
    files: dict[str, str | bytes] = {"main.py": SOURCE.format("'source'"), path: foreign}
    assert _serve(run, files) == "source"
    assert _serve(run, {**files, path: b"junk"}) == "source"


def test_imported_modules_use_their_bytecode_too(run: Run) -> None:
    compiled = _bytecode(run, {"main.py": USES_HELPER, "helper.py": HELPER.format("'bytecode'")})
    assert len(compiled) == 2
    files: dict[str, str | bytes] = {
        "main.py": USES_HELPER,
        "helper.py": HELPER.format("'source'"),
        **{path: base64.b64decode(pyc) for path, pyc in compiled.items()},
    }
    assert _serve(run, files) == "bytecode"
