"""What the pool and its worker processes say to each other.

Frames are a 4-byte big-endian length + a JSON object; a frame larger than
``MAX_FRAME_BYTES`` means a broken peer. Pool → worker: ``run`` (a job),
``cancel``, ``exit``. Worker → pool: ``ready`` once, then per run any number
of ``out``, ``display`` and ``sub`` and one ``end`` (which carries the returned
files, if the job asked for any). Every engine's worker speaks this, so
one pool serves them all.

A ``run`` or ``turn`` carries the run's ``id``; every frame the worker writes about it
carries the same ``id`` (a worker may run several at once and interleave their frames),
and ``cancel`` with an ``id`` ends that run only.

Sessions (workers whose runtime keeps instances): ``open`` (``session`` id, ``workdir``,
``memory_mb``, and ``tenant``, who owns it, when the pool knows) is answered by ``opened``
or ``open_failed`` (``detail``); ``turn`` (``session``, ``job``) is answered like ``run``,
its ``end`` also saying ``session_alive``,
``session_memory_bytes`` (its linear memory then) and ``session_ended`` (why the turn
ended the session when its status doesn't say: ``crashed``, ``disk_quota``,
``cpu_limit``); ``close`` (``session``) gets no answer and is idempotent.
The worker reads ``open``, ``turn`` and ``close`` in order
between jobs; only ``cancel`` jumps the queue (a ``cancel`` naming a ``session`` ends that
session's turn only, if it is the one running).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
from dataclasses import asdict
from typing import Any, BinaryIO

from sandbox.egress import EgressPolicy, SubrequestRecord
from sandbox.events import (
    Display,
    End,
    Event,
    Files,
    GuestError,
    Output,
    ResultValue,
    ReturnedFile,
    RunReport,
    Status,
    Subrequest,
    Usage,
)
from sandbox.jobs import Job
from sandbox.limits import Limits
from sandbox.outputs import FileCaps

__all__ = [
    "MAX_FRAME_BYTES",
    "FrameSink",
    "ProtocolError",
    "end_message",
    "events_from_message",
    "job_from_message",
    "job_message",
    "read_frame",
    "read_frame_async",
    "write_frame",
]

MAX_FRAME_BYTES = 256 * 1024 * 1024
_HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """The peer sent something that is not a frame."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


def write_frame(out: BinaryIO, message: dict[str, Any]) -> None:
    out.write(encode(message))


def _read_exactly(inp: BinaryIO, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = inp.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(inp: BinaryIO) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    header = _read_exactly(inp, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES} limit")
    body = _read_exactly(inp, size)
    if body is None:
        return None
    return _decode(body)


async def read_frame_async(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        if size > MAX_FRAME_BYTES:
            raise ProtocolError(f"frame of {size} bytes is over the {MAX_FRAME_BYTES} limit")
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    return _decode(body)


def _decode(body: bytes) -> dict[str, Any]:
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"frame is not JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise ProtocolError("frame is not a JSON object")
    return message


def job_message(job: Job) -> dict[str, Any]:
    """The ``run`` frame's job."""
    return {
        "code": job.code,
        "limits": job.limits.as_dict(),
        "egress": {
            "allowed_hosts": [str(entry) for entry in job.egress.allowed_hosts],
            "options": {
                "max_response_bytes": job.egress.max_response_bytes,
                "timeout_ms": job.egress.timeout_ms,
                "max_redirects": job.egress.max_redirects,
                "private_networks": [str(network) for network in job.egress.private_networks],
            },
        },
        "stdin": job.stdin,
        "env": dict(job.env),
        "files": {name: base64.b64encode(data).decode() for name, data in job.files.items()},
        "requirements": list(job.requirements),
        "result_bytes": job.result_bytes,
        "figure_format": job.figure_format,
        "return_files": list(job.return_files),
        "file_caps": asdict(job.file_caps),
        "live_output": job.live_output,
    }


def job_from_message(message: dict[str, Any]) -> Job:
    """The inverse of :func:`job_message`; raises ValueError, KeyError or TypeError."""
    egress = message.get("egress") or {}
    return Job(
        code=message["code"],
        limits=Limits(**message["limits"]),
        egress=EgressPolicy.from_strings(
            egress.get("allowed_hosts", []), **egress.get("options", {})
        ),
        stdin=message.get("stdin"),
        env=dict(message.get("env") or {}),
        files={name: base64.b64decode(data) for name, data in (message.get("files") or {}).items()},
        requirements=tuple(message.get("requirements") or ()),
        result_bytes=int(message.get("result_bytes") or 64 * 1024),
        figure_format=message.get("figure_format") or "png",
        return_files=tuple(message.get("return_files") or ()),
        file_caps=FileCaps(**(message.get("file_caps") or {})),
        live_output=bool(message.get("live_output", True)),
    )


def end_message(report: RunReport) -> dict[str, Any]:
    message: dict[str, Any] = {
        "t": "end",
        "status": report.status.value,
        "usage": asdict(report.usage),
        "error": asdict(report.error) if report.error else None,
        "result": asdict(report.result) if report.result else None,
        "exit_code": report.exit_code,
        "output_truncated": report.output_truncated,
    }
    if report.files is not None:
        message["files"] = [asdict(item) for item in report.files]
    return message


def events_from_message(message: dict[str, Any]) -> list[Event]:
    """The events one worker frame stands for; raises ProtocolError for anything else."""
    kind = message.get("t")
    try:
        if kind == "out":
            if message["s"] == "stderr":
                return [Output(stream="stderr", text=message["d"])]
            return [Output(stream="stdout", text=message["d"])]
        if kind == "display":
            return [Display(mime_type=str(message["mime_type"]), data=str(message["data"]))]
        if kind == "sub":
            return [
                Subrequest(
                    method=message["method"],
                    url=message["url"],
                    status=message["status"],
                    bytes=message["bytes"],
                    ms=message["ms"],
                    allowed=message["allowed"],
                    reason=message.get("reason"),
                    sent_bytes=int(message.get("sent_bytes", 0)),
                )
            ]
        if kind == "end":
            events: list[Event] = []
            if message.get("result"):
                events.append(ResultValue(**message["result"]))
            if message.get("files") is not None:
                events.append(Files(tuple(ReturnedFile(**item) for item in message["files"])))
            error = message.get("error")
            events.append(
                End(
                    status=Status(message["status"]),
                    usage=Usage(**message["usage"]) if message.get("usage") else Usage(),
                    error=GuestError(**error) if error else None,
                    exit_code=message.get("exit_code"),
                    output_truncated=bool(message.get("output_truncated")),
                )
            )
            return events
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed {kind!r} frame: {exc}") from exc
    raise ProtocolError(f"unexpected frame from worker: {kind!r}")


class FrameSink:
    """The worker side's writer: coalesces output into few frames; thread-safe.

    ``output`` buffers (flushed at ``flush_at_bytes``, on any other frame, and
    whenever ``flush`` is called: engines call it on a timer so streaming stays
    live while the guest computes).
    """

    def __init__(
        self,
        out: BinaryIO,
        flush_at_bytes: int = 16 * 1024,
        *,
        tag: dict[str, Any] | None = None,
    ) -> None:
        self._out = out
        # Added to every frame (a run's ``id``, when the worker runs several at once).
        self._tag = tag or {}
        self._flush_at = flush_at_bytes
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._pending_bytes = 0

    def output(self, stream: str, text: str) -> None:
        with self._lock:
            if self._pending and self._pending[-1][0] == stream:
                self._pending[-1] = (stream, self._pending[-1][1] + text)
            else:
                self._pending.append((stream, text))
            self._pending_bytes += len(text)
            if self._pending_bytes >= self._flush_at:
                self._flush_locked()

    def subrequest(self, record: SubrequestRecord) -> None:
        self.send({"t": "sub", **asdict(record)})

    def display(self, output: Display) -> None:
        self.send({"t": "display", "mime_type": output.mime_type, "data": output.data})

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            # One write for the pending output and the message: a run's last output and
            # its end reach the pool together (one wakeup of its reader, not two).
            self._out.write(b"".join([*self._take_pending(), encode({**message, **self._tag})]))

    def _flush_locked(self) -> None:
        if self._pending:
            self._out.write(b"".join(self._take_pending()))

    def _take_pending(self) -> list[bytes]:
        frames = [
            encode({"t": "out", "s": stream, "d": text, **self._tag})
            for stream, text in self._pending
        ]
        self._pending.clear()
        self._pending_bytes = 0
        return frames
