"""A run's files (its working directory and its /tmp) held to its disk limit while the
guest runs, on both wasmtime guests (the data stack and the component): the disk watch
(diskwatch.py) stops the guest soon after they go over, the run ends ``error``
(DiskQuotaExceeded), and the runtime's next run starts clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import Job, Limits, Status
from sandbox.engines.stack import StackArtifacts
from sandbox.engines.stack import build as build_stack
from sandbox.engines.stack.host import StackRuntime
from sandbox.engines.wasmtime import Artifacts
from sandbox.engines.wasmtime.host import GuestRuntime
from sandbox.limits import MIB
from tests.conftest import ARTIFACT_DIR
from tests.engines.test_stack_runtime import Sink

pytestmark = pytest.mark.slow

LIMIT = 8 * MIB
# What a run may write past the limit before the watch stops it: as for a session's turn
# (tests/engines/test_stack_sessions.py, OVERSHOOT: measured at most ~9 MiB, more while
# the watch's thread waits for a core on a loaded box).
OVERSHOOT = 32 * MIB
WRITE_FOREVER = (
    "chunk = b'x' * (1024 * 1024)\n"
    "with open({path!r}, 'wb') as f:\n"
    "    while True:\n"
    "        f.write(chunk)\n"
)


@pytest.fixture(scope="module")
def stack_artifacts() -> StackArtifacts:
    return build_stack(ARTIFACT_DIR)


@pytest.fixture(params=["stack", "component"])
def runtime(
    request: pytest.FixtureRequest, artifacts: Artifacts, tmp_path: Path
) -> Iterator[GuestRuntime]:
    workdir = tmp_path / "work"
    if request.param == "stack":
        stack = request.getfixturevalue("stack_artifacts")
        made: GuestRuntime = StackRuntime(stack, workdir, run_disk_bytes=LIMIT)
    else:
        made = GuestRuntime(
            artifacts.precompiled, artifacts.stdlib_mount, workdir, run_disk_bytes=LIMIT
        )
    yield made
    made.close()


def _on_disk(*directories: Path) -> int:
    return sum(
        p.stat().st_size for directory in directories for p in directory.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize("path", ["big.bin", "/tmp/big.bin"], ids=["work", "tmp"])
def test_a_run_writing_past_its_limit_is_stopped_soon_after(
    runtime: GuestRuntime, tmp_path: Path, path: str
) -> None:
    limits = Limits(wall_ms=20_000, cpu_ms=20_000)
    report = runtime.run(Job(code=WRITE_FOREVER.format(path=path), limits=limits), Sink())
    assert report.status is Status.ERROR, report
    assert report.error is not None and report.error.type == "DiskQuotaExceeded"
    assert f"{LIMIT} bytes (SANDLOT_RUN_DISK_MB)" in report.error.message
    assert report.usage.wall_ms < 10_000  # stopped by the watch, not the clock
    dirs = (tmp_path / "work", tmp_path / "work-tmp")
    written = _on_disk(*dirs)
    assert LIMIT < written <= LIMIT + OVERSHOOT, written
    runtime.prepare()
    assert _on_disk(*dirs) == 0
    after = runtime.run(Job(code="print(1 + 1)"), Sink())
    assert after.status is Status.OK, after


def test_the_limit_holds_for_work_and_tmp_together(runtime: GuestRuntime) -> None:
    # 5 MiB in each: under the limit apart, over it together.
    code = (
        "import time\nblob = b'x' * (5 * 1024 * 1024)\n"
        "open('a.bin', 'wb').write(blob)\nopen('/tmp/a.bin', 'wb').write(blob)\n"
        "time.sleep(5)"
    )
    report = runtime.run(Job(code=code, limits=Limits(wall_ms=20_000)), Sink())
    assert report.status is Status.ERROR, report
    assert report.error is not None and report.error.type == "DiskQuotaExceeded"
    assert report.usage.wall_ms < 4_000


def test_a_run_under_its_limit_is_untouched(runtime: GuestRuntime) -> None:
    code = "open('a.bin', 'wb').write(b'x' * (4 * 1024 * 1024))\nimport time\ntime.sleep(1.2)"
    report = runtime.run(Job(code=code, limits=Limits(wall_ms=10_000)), Sink())
    assert report.status is Status.OK, report
