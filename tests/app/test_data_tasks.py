"""Realistic data tasks (tests/data_tasks/), sent as an agent sends them, on the default engine.

Each task file is code plus its unittest cases ending in ``unittest.main()``; the run
must end ``ok`` (exit code 0) with unittest's verdict ``OK`` on stderr. Every file also
passes under native CPython with the same packages (tests/data_tasks/README.md).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import execute

pytestmark = pytest.mark.slow

TASKS = sorted((Path(__file__).parent.parent / "data_tasks").glob("*.py"))


def test_there_are_tasks() -> None:
    assert len(TASKS) >= 25


@pytest.mark.parametrize("task", TASKS, ids=[task.stem for task in TASKS])
def test_task_passes_its_tests(client: httpx.Client, task: Path) -> None:
    # The service's default limits, as an agent that sets none gets them.
    body = execute(client, task.read_text(), runtime="wasmtime")
    stderr = str(body["stderr"])
    assert body["status"] == "ok", (body.get("error"), stderr[-2000:])
    # unittest's last line: "OK" (or "OK (skipped=n)"); FAILED would have exited 1. After
    # it, only the service's own note on figures left open that it could not send back.
    lines = [line for line in stderr.strip().splitlines() if not line.startswith("sandlot: ")]
    assert lines[-1].startswith("OK"), stderr[-2000:]
    assert "Ran 0 tests" not in stderr
