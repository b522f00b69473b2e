"""The data-stack guest's outbox: output held in guest memory and read back by the host.

A run nobody follows as it goes (``live_output`` False: JSON answers, tools, dispatch)
writes its stdout and stderr into a buffer in the guest instead of a WASI call per line;
the host reads it when the turn is over, however it ended (guest/_sandlot_outbox.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.engines.stack import StackArtifacts, build
from sandbox.engines.stack.host import OUTBOX_CAPACITY, StackRuntime
from sandbox.events import Display, RunReport, Status
from sandbox.jobs import Job
from sandbox.limits import Limits
from tests.conftest import ARTIFACT_DIR


class TimedSink:
    """Each piece of output with the moment it reached the host."""

    def __init__(self) -> None:
        self.pieces: list[tuple[float, str, str]] = []

    def output(self, stream: str, text: str) -> None:
        self.pieces.append((time.monotonic(), stream, text))

    def text(self, stream: str) -> str:
        return "".join(text for _, s, text in self.pieces if s == stream)

    def subrequest(self, record: Any) -> None:
        pass

    def display(self, output: Display) -> None:
        pass

    def flush(self) -> None:
        pass


@pytest.fixture(scope="module")
def stack_artifacts() -> StackArtifacts:
    return build(ARTIFACT_DIR)


@pytest.fixture(scope="module")
def runtime(
    stack_artifacts: StackArtifacts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackRuntime]:
    rt = StackRuntime(stack_artifacts, tmp_path_factory.mktemp("outbox-work"))
    yield rt
    rt.close()


def run(
    runtime: StackRuntime, code: str, *, live: bool = False, **limits: int
) -> tuple[RunReport, TimedSink]:
    sink = TimedSink()
    job = Job(code=code, limits=Limits(**limits), live_output=live)
    report = runtime.run(job, sink)
    runtime.prepare()
    return report, sink


def test_held_output_comes_back_whole_and_in_order(runtime: StackRuntime) -> None:
    # Several times the outbox's size, both streams, text and bytes: it is written out
    # when full, and the rest read by the host at the end.
    code = (
        "import sys\n"
        "for i in range(20000):\n"
        "    print(f'line {i}')\n"
        "    if i % 1000 == 0:\n"
        "        print(f'err {i}', file=sys.stderr)\n"
        "        sys.stdout.buffer.write(b'raw\\xc3\\xa9\\n')\n"
        "print('no newline at the end', end='')\n"
    )
    report, sink = run(runtime, code)
    assert report.status is Status.OK, report.error
    expected = []
    for i in range(20000):
        expected.append(f"line {i}\n")
        if i % 1000 == 0:
            expected.append("rawé\n")
    expected.append("no newline at the end")
    stdout = sink.text("stdout")
    assert len(stdout) > 3 * OUTBOX_CAPACITY
    assert stdout == "".join(expected)
    assert sink.text("stderr") == "".join(f"err {i}\n" for i in range(0, 20000, 1000))


@pytest.mark.parametrize(
    ("tail", "limits", "status"),
    [
        ("while True:\n    pass", {"wall_ms": 400}, Status.WALL_LIMIT),
        ("while True:\n    pass", {"cpu_ms": 300}, Status.CPU_LIMIT),
        ("x = bytearray(10**9)", {"memory_mb": 64}, Status.MEMORY_LIMIT),
        ("import os\nos._exit(3)", {}, Status.ERROR),
        ("while True:\n    print('x' * 1000)", {"output_bytes": 100_000}, Status.OUTPUT_LIMIT),
    ],
    ids=["wall", "cpu", "memory", "os-exit", "output"],
)
def test_held_output_is_not_lost_when_the_run_is_stopped(
    runtime: StackRuntime, tail: str, limits: dict[str, int], status: Status
) -> None:
    code = "import sys\nprint('a')\nprint('b', file=sys.stderr)\nprint('c', end='')\n" + tail
    report, sink = run(runtime, code, **limits)
    assert report.status is status, report.error
    # A MemoryError's traceback follows on stderr, as python prints it.
    assert sink.text("stderr").startswith("b\n")
    assert (sink.text("stderr") == "b\n") is (status is not Status.MEMORY_LIMIT)
    if status is Status.OUTPUT_LIMIT:
        assert sink.text("stdout").startswith("a\ncxxx")
        assert len(sink.text("stdout")) + len(sink.text("stderr")) <= 100_000
    else:
        assert sink.text("stdout") == "a\nc"


def test_live_output_comes_as_it_is_written_held_output_at_the_end(
    runtime: StackRuntime,
) -> None:
    code = (
        "import time\n"
        "print('first')\n"
        "t = time.monotonic()\n"
        "while time.monotonic() - t < 0.5:\n"
        "    pass\n"
        "print('last')\n"
    )
    started = time.monotonic()
    report, live = run(runtime, code, live=True)
    assert report.status is Status.OK and live.text("stdout") == "first\nlast\n"
    first_at = live.pieces[0][0] - started
    assert first_at < 0.3, f"live output came {first_at:.2f} s into a 0.5 s run"

    started = time.monotonic()
    report, held = run(runtime, code, live=False)
    assert report.status is Status.OK and held.text("stdout") == "first\nlast\n"
    first_at = held.pieces[0][0] - started
    assert first_at >= 0.5, f"held output came {first_at:.2f} s into a 0.5 s run"


def test_a_guest_that_scribbles_on_its_outbox_harms_only_its_own_output(
    runtime: StackRuntime,
) -> None:
    # The outbox is the user's own memory: what the host reads there is checked, and the
    # next run's outbox is the snapshot's again.
    code = (
        "import _sandlot_outbox, struct\n"
        "box = _sandlot_outbox.OUTBOX._buf\n"
        "print('kept')\n"
        "box[24:29] = bytes([9]) + struct.pack('<I', 5)\n"  # a record for fd 9
        "struct.pack_into('<II', box, 16, 0xFFFFFFF0, 0)\n"  # more than there is room for
    )
    report, sink = run(runtime, code)
    assert report.status is Status.OK, report.error
    assert sink.text("stdout") == "" and sink.text("stderr") == ""
    report, sink = run(runtime, "print('fine')")
    assert report.status is Status.OK and sink.text("stdout") == "fine\n"


def test_each_turn_of_a_session_gets_its_own_output(runtime: StackRuntime, tmp_path: Path) -> None:
    runtime.open_session("ses_outbox", tmp_path / "ses", memory_mb=256)
    try:
        outputs = []
        for code in ("print('one')", "print('two')", "print('three')\nwhile True:\n    pass"):
            sink = TimedSink()
            job = Job(code=code, limits=Limits(wall_ms=400), live_output=False)
            report, alive = runtime.run_turn("ses_outbox", job, sink)
            outputs.append((report.status, alive, sink.text("stdout")))
        assert outputs == [
            (Status.OK, True, "one\n"),
            (Status.OK, True, "two\n"),
            (Status.WALL_LIMIT, False, "three\n"),
        ]
    finally:
        runtime.close_session("ses_outbox")
