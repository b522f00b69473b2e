"""sandbox/engines/wasmtime/diskwatch.py: the thread that finds a directory over its quota."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.engines.wasmtime.diskwatch import DiskWatch
from sandbox.workspace import DiskUsage, Workspace


@pytest.fixture
def watch() -> Iterator[DiskWatch]:
    made = DiskWatch()
    yield made
    made.close()
    made.close()  # idempotent


def _armed(watch: DiskWatch, space: Workspace) -> tuple[threading.Event, list[DiskUsage]]:
    fired, seen = threading.Event(), []

    def on_over(usage: DiskUsage) -> None:
        seen.append(usage)
        fired.set()

    watch.arm(space, on_over)
    return fired, seen


def test_a_directory_going_over_is_reported_once(watch: DiskWatch, tmp_path: Path) -> None:
    space = Workspace(tmp_path, 1000)
    fired, seen = _armed(watch, space)
    (tmp_path / "a.bin").write_bytes(b"x" * 600)
    time.sleep(0.2)
    assert not fired.is_set()
    (tmp_path / "b.bin").write_bytes(b"x" * 600)  # written by this process: the tally moves
    assert fired.wait(1)
    assert seen == [DiskUsage(1200, 2, True)]
    time.sleep(0.1)
    assert len(seen) == 1  # disarmed by itself


def test_nothing_is_reported_after_disarm(watch: DiskWatch, tmp_path: Path) -> None:
    space = Workspace(tmp_path, 1000)
    fired, _ = _armed(watch, space)
    watch.disarm()
    (tmp_path / "big.bin").write_bytes(b"x" * 5000)
    assert not fired.wait(1.5)


def test_a_directory_nobody_writes_is_counted_about_once_a_second(
    watch: DiskWatch, tmp_path: Path
) -> None:
    space = Workspace(tmp_path, 10**9)
    _armed(watch, space)
    time.sleep(1.5)
    assert 1 <= watch.walks <= 3
    # Growth without a write (a sparse file): found by the count a second.
    fired, _ = _armed(watch, Workspace(tmp_path, 1000))
    with (tmp_path / "sparse.bin").open("wb") as handle:
        handle.truncate(10**6)
    assert fired.wait(2.5)
