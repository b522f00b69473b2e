"""Sessions in StackRuntime: instances kept between turns, each with its own directory.

The real snapshot, driven as a worker process drives it (open, turn, prepare, close).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.engines.stack import StackArtifacts, build
from sandbox.engines.stack.host import StackRuntime
from sandbox.events import RunReport, Status
from sandbox.jobs import Job
from sandbox.limits import Limits
from tests.conftest import ARTIFACT_DIR
from tests.engines.test_stack_runtime import Sink

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack_artifacts() -> StackArtifacts:
    return build(ARTIFACT_DIR)


@pytest.fixture
def runtime(stack_artifacts: StackArtifacts, tmp_path: Path) -> Iterator[StackRuntime]:
    rt = StackRuntime(stack_artifacts, tmp_path / "worker")
    yield rt
    rt.close()


def turn(
    runtime: StackRuntime, session: str, code: str, **limits: Any
) -> tuple[RunReport, bool, Sink]:
    sink = Sink()
    job = Job(code=code, limits=Limits(**limits) if limits else Limits())
    report, alive = runtime.run_turn(session, job, sink)
    runtime.prepare()
    return report, alive, sink


def value(report: RunReport) -> Any:
    assert report.status is Status.OK, report
    assert report.result is not None
    return report.result.json


def test_state_persists_and_a_run_in_between_sees_none_of_it(
    runtime: StackRuntime, tmp_path: Path
) -> None:
    runtime.open_session("a", tmp_path / "a", 256)
    runtime.prepare()
    turn(runtime, "a", "import pandas as pd\ndf = pd.DataFrame({'v': [1, 2, 3]})\nn = 10")
    fresh = runtime.run(Job(code="'df' in globals(), 'n' in globals()"), Sink())
    runtime.prepare()
    assert value(fresh) == [False, False]
    report, alive, _ = turn(runtime, "a", "int(df.v.sum()) + n")
    assert (value(report), alive) == (16, True)


def test_the_spare_instance_takes_the_sessions_directory(
    runtime: StackRuntime, tmp_path: Path
) -> None:
    runtime.open_session("first", tmp_path / "first", 256)  # made on the spot
    runtime.prepare()  # now a spare waits, over a directory of its own
    spare_dirs = [p for p in (tmp_path).iterdir() if p.name.endswith("-spare")]
    assert len(spare_dirs) == 1
    runtime.open_session("second", tmp_path / "second", 256)  # the spare, renamed
    assert not spare_dirs[0].exists()
    report, _, _ = turn(
        runtime, "second", "open('mine.txt', 'w').write('2')\nimport os\nos.listdir()"
    )
    assert value(report) == ["mine.txt"]
    assert (tmp_path / "second" / "mine.txt").read_text() == "2"
    assert value(turn(runtime, "first", "import os\nos.listdir()")[0]) == []
    with pytest.raises(ValueError):
        runtime.open_session("third", tmp_path / "second", 256)  # exists already


def test_sessions_in_one_process_are_isolated(runtime: StackRuntime, tmp_path: Path) -> None:
    runtime.open_session("a", tmp_path / "a", 256)
    runtime.open_session("b", tmp_path / "b", 256)
    turn(runtime, "a", "secret = 'a'\nimport sys\nsys.modules['json'].marker = 1")
    report, _, _ = turn(
        runtime, "b", "import json, sys\n('secret' in globals(), hasattr(json, 'marker'))"
    )
    assert value(report) == [False, False]


@pytest.mark.parametrize(
    ("code", "limits", "status"),
    [
        ("while True:\n    pass", {"cpu_ms": 200}, Status.CPU_LIMIT),
        ("import time\nwhile True:\n    time.sleep(0.01)", {"wall_ms": 300}, Status.WALL_LIMIT),
        ("print('x' * 10_000)", {"output_bytes": 100}, Status.OUTPUT_LIMIT),
        ("import os\nos._exit(0)", {}, Status.OK),
    ],
    ids=["cpu", "wall", "output", "os-exit"],
)
def test_a_turn_stopped_mid_way_drops_the_instance(
    runtime: StackRuntime, tmp_path: Path, code: str, limits: dict[str, int], status: Status
) -> None:
    runtime.open_session("a", tmp_path / "a", 256)
    turn(runtime, "a", "x = 1")
    report, alive, _ = turn(runtime, "a", code, **limits)
    assert (report.status, alive) == (status, False)
    gone, alive, _ = turn(runtime, "a", "x")
    assert (gone.status, alive) == (Status.INTERNAL_ERROR, False)
    assert gone.error is not None and gone.error.type == "SessionEnded"


def test_errors_keep_the_session(runtime: StackRuntime, tmp_path: Path) -> None:
    runtime.open_session("a", tmp_path / "a", 256)
    turn(runtime, "a", "x = 1")
    failed, alive, sink = turn(runtime, "a", "1 / 0")
    assert (failed.status, alive) == (Status.ERROR, True)
    assert "ZeroDivisionError" in "".join(sink.stderr)
    exited, alive, _ = turn(runtime, "a", "import sys\nsys.exit(2)")
    assert (exited.status, exited.exit_code, alive) == (Status.ERROR, 2, True)
    assert value(turn(runtime, "a", "x")[0]) == 1


def test_memory_is_capped_for_the_sessions_life(runtime: StackRuntime, tmp_path: Path) -> None:
    runtime.open_session("a", tmp_path / "a", 64)
    # 40 MiB fit; kept, they leave too little for 40 more.
    assert turn(runtime, "a", "blob = bytearray(40 * 1024 * 1024)")[0].status is Status.OK
    report, alive, _ = turn(runtime, "a", "more = bytearray(40 * 1024 * 1024)")
    assert (report.status, alive) == (Status.MEMORY_LIMIT, False)


def test_the_sessions_memory_is_reported(runtime: StackRuntime, tmp_path: Path) -> None:
    runtime.open_session("a", tmp_path / "a", 256)
    before = runtime.session_memory_bytes("a")
    assert before is not None and before > 100 * 1024 * 1024  # the guest's image
    turn(runtime, "a", "blob = bytearray(64 * 1024 * 1024)")
    after = runtime.session_memory_bytes("a")
    assert after is not None and after >= before + 32 * 1024 * 1024
    assert runtime.session_memory_bytes("nobody") is None


def test_close_is_idempotent(runtime: StackRuntime, tmp_path: Path) -> None:
    runtime.open_session("a", tmp_path / "a", 256)
    runtime.close_session("a")
    runtime.close_session("a")
    assert turn(runtime, "a", "1")[1] is False
