"""sandbox/engines/serving.py: a worker process taking several runs at once.

``serve`` driven over real pipes with a stand-in runtime (no engine): runs overlap on
their own threads and runtimes, every frame names its run, a cancel ends only the run it
names, a host fault in one runtime ends that run alone, and run threads wait for the next
run instead of being made per run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from sandbox import protocol
from sandbox.engines import serving
from sandbox.engines.serving import serve
from sandbox.events import RunReport, Status, Usage
from sandbox.jobs import Job


class FakeRuntime:
    """``wait``: blocks until released or aborted; ``boom``: a host fault; else prints."""

    made = 0
    gate = threading.Event()
    # The thread each run ran on, in the order they began.
    threads: ClassVar[list[int]] = []

    def __init__(self) -> None:
        FakeRuntime.made += 1
        self.number = FakeRuntime.made
        self._abort = threading.Event()
        self._status: Status | None = None

    def run(self, job: Job, sink: protocol.FrameSink) -> RunReport:
        FakeRuntime.threads.append(threading.get_native_id())
        self._abort.clear()
        self._status = None
        if job.code == "boom":
            raise RuntimeError("a host fault")
        if job.code == "wait":
            while not (self.gate.is_set() or self._abort.wait(0.01)):
                pass
            if self._status is not None:
                return RunReport(self._status, Usage())
        sink.output("stdout", f"{job.code} in runtime {self.number}")
        return RunReport(Status.OK, Usage())

    def abort(self, status: Status) -> None:
        self._status = status
        self._abort.set()

    def prepare(self) -> None:
        pass

    def close(self) -> None:
        pass


class Worker:
    def __init__(self, runs: int) -> None:
        FakeRuntime.made = 0
        FakeRuntime.gate = threading.Event()
        FakeRuntime.threads = []
        to_worker_r, self._to_worker = os.pipe()
        self._from_worker, from_worker_w = os.pipe()
        inp = os.fdopen(to_worker_r, "rb")
        out = os.fdopen(from_worker_w, "wb", buffering=0)
        self.reader = os.fdopen(self._from_worker, "rb")
        self.writer = os.fdopen(self._to_worker, "wb", buffering=0)
        self._files = (inp, out, self.reader, self.writer)
        self.thread = threading.Thread(
            target=serve,
            args=(FakeRuntime(), inp, out),
            kwargs={"make_runtime": FakeRuntime, "runs": runs},
            daemon=True,
        )
        self.thread.start()
        assert self.receive()["t"] == "ready"

    def close(self) -> None:
        FakeRuntime.gate.set()
        self.send({"op": "exit"})
        self.thread.join(5)
        for file in self._files:
            file.close()

    def send(self, message: dict[str, Any]) -> None:
        protocol.write_frame(self.writer, message)

    def run(self, run_id: str, code: str) -> None:
        self.send({"op": "run", "id": run_id, "job": protocol.job_message(Job(code=code))})

    def receive(self) -> dict[str, Any]:
        frame = protocol.read_frame(self.reader)
        assert frame is not None
        return frame

    def ends(self, count: int) -> dict[str, tuple[str, str]]:
        """run id → (status, stdout) for the next ``count`` runs to end."""
        out: dict[str, str] = {}
        ends: dict[str, tuple[str, str]] = {}
        while len(ends) < count:
            frame = self.receive()
            if frame["t"] == "out":
                out[frame["id"]] = out.get(frame["id"], "") + frame["d"]
            elif frame["t"] == "end":
                ends[frame["id"]] = (frame["status"], out.get(frame["id"], ""))
        return ends


@pytest.fixture
def worker() -> Iterator[Worker]:
    w = Worker(runs=3)
    yield w
    w.close()


def test_runs_overlap_each_in_its_own_runtime(worker: Worker) -> None:
    worker.run("a", "wait")
    worker.run("b", "wait")
    worker.run("c", "quick")  # ends while a and b still wait: they hold no lane it needs
    assert worker.ends(1) == {"c": ("ok", "quick in runtime 4")}
    FakeRuntime.gate.set()
    ends = worker.ends(2)
    assert {status for status, _ in ends.values()} == {"ok"}
    # The session runtime (1) took none of them; three lanes, each its own runtime.
    assert sorted(out.rsplit(" ", 1)[1] for _, out in ends.values()) == ["2", "3"]


def test_a_cancel_ends_only_the_run_it_names(worker: Worker) -> None:
    worker.run("a", "wait")
    worker.run("b", "wait")
    worker.send({"op": "cancel", "id": "a"})
    assert worker.ends(1) == {"a": ("canceled", "")}
    FakeRuntime.gate.set()
    assert worker.ends(1) == {"b": ("ok", "wait in runtime 3")}


def test_a_run_over_the_slots_waits_for_a_free_runtime(worker: Worker) -> None:
    for run_id in "abc":
        worker.run(run_id, "wait")
    worker.run("d", "quick")  # all three lanes busy: d waits, it is not refused
    worker.send({"op": "cancel", "id": "d"})  # canceled while it waits: it never runs
    worker.send({"op": "cancel", "id": "b"})
    assert worker.ends(2) == {"b": ("canceled", ""), "d": ("canceled", "")}
    FakeRuntime.gate.set()
    assert set(worker.ends(2)) == {"a", "c"}


def test_a_host_fault_ends_its_run_and_spares_the_others(worker: Worker) -> None:
    worker.run("a", "wait")
    worker.run("b", "boom")
    assert worker.ends(1) == {"b": ("internal_error", "")}
    worker.run("c", "after")
    assert worker.ends(1)["c"][0] == "ok"
    FakeRuntime.gate.set()
    assert worker.ends(1) == {"a": ("ok", "wait in runtime 2")}


def test_runs_one_after_another_reuse_one_thread(worker: Worker) -> None:
    for run_id in "abcdefghij":
        worker.run(run_id, "quick")
        assert worker.ends(1)[run_id][0] == "ok"
    # A run may arrive while the last one's thread still prepares (it reported its end
    # first): then a second thread takes it. Never one per run.
    assert len(set(FakeRuntime.threads)) <= 2, FakeRuntime.threads


def test_an_idle_run_thread_ends_and_the_next_run_gets_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(serving, "THREAD_IDLE_S", 0.05)
    worker = Worker(runs=3)
    try:
        worker.run("a", "quick")
        assert worker.ends(1)["a"][0] == "ok"
        (first,) = FakeRuntime.threads
        (thread,) = [t for t in threading.enumerate() if t.native_id == first]
        thread.join(5)  # it waited 50 ms for a run, then ended
        assert not thread.is_alive()
        worker.run("b", "quick")
        assert worker.ends(1)["b"] == ("ok", "quick in runtime 2")
        assert FakeRuntime.threads[1] != first
    finally:
        worker.close()


def test_closing_ends_the_waiting_run_threads() -> None:
    worker = Worker(runs=3)
    worker.run("a", "quick")
    assert worker.ends(1)["a"][0] == "ok"
    (thread,) = [t for t in threading.enumerate() if t.native_id == FakeRuntime.threads[0]]
    worker.close()
    thread.join(5)
    assert not thread.is_alive()
