"""sandbox/protocol.py: length-prefixed JSON frames, both directions."""

from __future__ import annotations

import asyncio
import io
import json
import struct

import pytest

from sandbox import EgressPolicy, FileCaps, Job, protocol
from sandbox.egress import SubrequestRecord
from sandbox.events import Display, Files, ReturnedFile, RunReport, Status, Usage
from sandbox.protocol import job_from_message, job_message


def test_round_trip_blocking() -> None:
    buffer = io.BytesIO()
    protocol.write_frame(buffer, {"t": "out", "d": "héllo"})
    protocol.write_frame(buffer, {"t": "end"})
    buffer.seek(0)
    assert protocol.read_frame(buffer) == {"t": "out", "d": "héllo"}
    assert protocol.read_frame(buffer) == {"t": "end"}
    assert protocol.read_frame(buffer) is None


def test_round_trip_async() -> None:
    async def main() -> list[object]:
        reader = asyncio.StreamReader()
        reader.feed_data(protocol.encode({"a": 1}) + protocol.encode({"b": [2]}))
        reader.feed_eof()
        return [
            await protocol.read_frame_async(reader),
            await protocol.read_frame_async(reader),
            await protocol.read_frame_async(reader),
        ]

    assert asyncio.run(main()) == [{"a": 1}, {"b": [2]}, None]


def test_truncated_frame_is_end_of_stream() -> None:
    data = protocol.encode({"a": 1})[:-2]
    assert protocol.read_frame(io.BytesIO(data)) is None


@pytest.mark.parametrize(
    "data",
    [
        struct.pack(">I", 5) + b"nope!",
        struct.pack(">I", 2) + b"[]",
        struct.pack(">I", protocol.MAX_FRAME_BYTES + 1),
    ],
    ids=["not-json", "not-an-object", "too-large"],
)
def test_garbage_raises_protocol_error(data: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.read_frame(io.BytesIO(data))


def test_job_message_keeps_the_egress_policy_whole() -> None:
    # The worker process rebuilds the policy from this frame: a network lost on the way would
    # close it, one added would open it.
    egress = EgressPolicy.from_strings(
        ["10.1.2.3:8080", "api.example.com"],
        max_redirects=0,
        private_networks=["10.0.0.0/8", "fd00::/8"],
    )
    job = Job(code="1", egress=egress)
    assert job_from_message(json.loads(json.dumps(job_message(job)))).egress == egress
    closed = Job(code="1", egress=EgressPolicy.from_strings(["10.1.2.3:8080"]))
    assert job_from_message(job_message(closed)).egress.private_networks == ()


def test_display_frames_and_returned_files_cross_the_pipe() -> None:
    buffer = io.BytesIO()
    sink = protocol.FrameSink(buffer)
    sink.output("stdout", "before\n")
    sink.display(Display("image/png", "iVBORw0K"))
    report = RunReport(
        Status.OK, Usage(), files=(ReturnedFile("a.csv", 3, "text/csv", "YWJj", False),)
    )
    sink.send(protocol.end_message(report))
    buffer.seek(0)
    events = []
    while (frame := protocol.read_frame(buffer)) is not None:
        events.extend(protocol.events_from_message(frame))
    assert [type(e).__name__ for e in events] == ["Output", "Display", "Files", "End"]
    assert events[1] == Display("image/png", "iVBORw0K")
    assert events[2] == Files((ReturnedFile("a.csv", 3, "text/csv", "YWJj", False),))


def test_a_job_keeps_its_outputs_options() -> None:
    job = Job(
        code="1",
        figure_format="svg",
        return_files=("*.csv",),
        file_caps=FileCaps(max_bytes=5, max_file_bytes=4, max_count=3),
        live_output=False,
    )
    again = protocol.job_from_message(protocol.job_message(job))
    assert (again.figure_format, again.return_files, again.file_caps, again.live_output) == (
        "svg",
        ("*.csv",),
        FileCaps(5, 4, 3),
        False,
    )
    assert protocol.job_from_message(protocol.job_message(Job(code="1"))).live_output


def test_a_tagged_sink_names_its_run_on_every_frame() -> None:
    # Two runs share one pipe (a worker taking several at once): the pool routes by id.
    buffer = io.BytesIO()
    first = protocol.FrameSink(buffer, tag={"id": "run_a"})
    second = protocol.FrameSink(buffer, tag={"id": "run_b"})
    first.output("stdout", "a1")
    second.output("stdout", "b1")
    second.send(protocol.end_message(RunReport(Status.OK, Usage())))
    first.flush()
    first.subrequest(SubrequestRecord("GET", "http://h/", 200, 1, 1.0, True, None))
    buffer.seek(0)
    frames = []
    while (frame := protocol.read_frame(buffer)) is not None:
        frames.append((frame["id"], frame["t"], frame.get("d")))
    assert frames == [
        ("run_b", "out", "b1"),
        ("run_b", "end", None),
        ("run_a", "out", "a1"),
        ("run_a", "sub", None),
    ]


class _Writes(io.BytesIO):
    """A pipe that remembers each write it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes.append(bytes(data))
        return super().write(data)


def test_a_runs_last_output_and_its_end_leave_in_one_write() -> None:
    # The pool's reader wakes once for both (not once per frame), in order.
    pipe = _Writes()
    sink = protocol.FrameSink(pipe, tag={"id": "run_a"})
    sink.output("stdout", "2\n")
    sink.output("stderr", "warn\n")
    sink.send(protocol.end_message(RunReport(Status.OK, Usage())))
    sink.flush()  # nothing pending: no empty write
    assert len(pipe.writes) == 1
    stream = io.BytesIO(pipe.writes[0])
    frames = []
    while (frame := protocol.read_frame(stream)) is not None:
        frames.append((frame["t"], frame.get("s"), frame.get("d")))
    assert frames == [("out", "stdout", "2\n"), ("out", "stderr", "warn\n"), ("end", None, None)]
