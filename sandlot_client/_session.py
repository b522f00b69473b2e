"""Sessions: an interpreter on the service that keeps its state between runs.

::

    with sandlot.session(memory_mb=512) as session:
        session.upload("sales.csv", data)
        session.run("import pandas as pd\\ndf = pd.read_csv('sales.csv')")
        session.run("df.groupby('city').sales.sum().to_dict()").result.json
        session.download("out.csv")

``Session`` (from ``Sandlot.session``) and ``AsyncSession`` (from ``AsyncSandlot.session``,
used with ``async with``) open the session when the block starts and close it when it
ends. A run ending anything but ``ok`` or ``error`` ends the session on the service; after
that every call raises SandlotError 410 (``ended`` says why: the service tells with each
run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from sandlot_client import _wire
from sandlot_client._errors import SandlotError
from sandlot_client._results import Event, RunBuilder, RunResult
from sandlot_client._wire import Call, segment

if TYPE_CHECKING:
    from sandlot_client._async_client import AsyncSandlot
    from sandlot_client._client import Sandlot

__all__ = ["AsyncSession", "Session", "SessionFile", "SessionInfo"]

# A run with one of these statuses leaves the session open.
_KEEPS = ("ok", "error")


@dataclass(frozen=True, slots=True)
class SessionFile:
    """A file in the session's directory: path relative to it, size in bytes."""

    path: str
    size: int


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as the service describes it (GET /v1/sessions/{id})."""

    id: str
    runtime: str
    state: str
    ended_reason: str | None
    busy: bool
    created_at: str
    last_used_at: str
    expires_at: str | None
    idle_timeout_s: int
    max_lifetime_s: int
    memory_mb: int
    limits: dict[str, int]
    allowed_hosts: list[str]
    usage: dict[str, Any]
    files_bytes: int
    disk_quota_bytes: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        known = {name: data[name] for name in cls.__slots__ if name in data}
        return cls(**known)


def create_body(
    *,
    runtime: str | None,
    limits: Mapping[str, int] | None,
    allowed_hosts: Sequence[str] | None,
    memory_mb: int | None,
    idle_timeout_s: int | None,
    max_lifetime_s: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if runtime is not None:
        body["runtime"] = runtime
    if limits:
        body["limits"] = dict(limits)
    if allowed_hosts:
        body["allowed_hosts"] = list(allowed_hosts)
    for name, value in (
        ("memory_mb", memory_mb),
        ("idle_timeout_s", idle_timeout_s),
        ("max_lifetime_s", max_lifetime_s),
    ):
        if value is not None:
            body[name] = value
    return body


def _turn_body(code: str, options: Mapping[str, Any]) -> dict[str, Any]:
    body = _wire.execute_body(
        code,
        runtime=None,
        limits=options.get("limits"),
        allowed_hosts=options.get("allowed_hosts"),
        stdin=options.get("stdin"),
        files=options.get("files"),
        env=options.get("env"),
        requirements=None,
        figure_format=options.get("figure_format"),
        return_files=options.get("return_files"),
    )
    if options.get("allowed_hosts") is None:
        body.pop("allowed_hosts", None)  # the session's
    return body


def _read_files(data: Any) -> list[SessionFile]:
    return [SessionFile(path=str(f["path"]), size=int(f["size"])) for f in data["files"]]


def _read_info(data: Any) -> SessionInfo:
    return SessionInfo.from_json(data)


class _Base:
    def __init__(self, body: dict[str, Any]) -> None:
        self._body = body
        self._id: str | None = None
        self.ended: str | None = None

    @property
    def id(self) -> str:
        """The session's id (``ses_...``); SandlotError before it is opened."""
        if self._id is None:
            raise SandlotError(0, "session_not_open", "the session is not open yet")
        return self._id

    def _path(self, tail: str = "") -> str:
        return f"/v1/sessions/{segment(self.id)}{tail}"

    def _file_path(self, path: str) -> str:
        return self._path("/files/" + "/".join(segment(part) for part in path.split("/")))

    def _saw_event(self, event: Event) -> None:
        # The service says, just before the end, whether the turn left the session open.
        if event.name == "session" and event.data.get("state") == "ended":
            self.ended = str(event.data.get("ended_reason") or "ended")

    def _saw(self, run: RunResult) -> RunResult:
        if self.ended is None and run.status not in _KEEPS:
            self.ended = run.status  # a service that sent no session event
        return run


class Session(_Base):
    """A session of a :class:`~sandlot_client.Sandlot` client (see the module's docstring).

    Open it with ``with`` (or :meth:`open`); :meth:`close` is idempotent.
    """

    def __init__(self, client: Sandlot, body: dict[str, Any]) -> None:
        super().__init__(body)
        self._client = client

    def open(self) -> Self:
        """Create the session on the service (once)."""
        if self._id is None:
            made = self._client._do(Call("POST", "/v1/sessions", _read_info, json=self._body))
            self._id = made.id
        return self

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session (its interpreter and files go). Idempotent."""
        if self._id is None or self.ended == "closed":
            return
        try:
            self._client._do(Call("DELETE", self._path(), _wire.read_nothing))
        except SandlotError as exc:
            if exc.status_code not in (404, 410):
                raise
        self.ended = "closed"

    def run(
        self,
        code: str,
        *,
        on_stdout: Callable[[str], object] | None = None,
        on_stderr: Callable[[str], object] | None = None,
        on_event: Callable[[Event], object] | None = None,
        **options: Any,
    ) -> RunResult:
        """Run ``code`` in the session, like a notebook cell; as ``Sandlot.run_code`` (its
        ``limits`` but memory_mb, ``stdin``, ``files``, ``env``, ``figure_format``,
        ``return_files``, ``allowed_hosts``), without ``runtime``."""
        self.open()
        builder = RunBuilder()
        events = self._client._events(self._path("/execute"), _turn_body(code, options))
        try:
            for sse in events:
                event = builder.add(sse)
                self._saw_event(event)
                if event.name == "stdout" and on_stdout is not None:
                    on_stdout(event.data["text"])
                elif event.name == "stderr" and on_stderr is not None:
                    on_stderr(event.data["text"])
                if on_event is not None:
                    on_event(event)
                if builder.ended:
                    break
        finally:
            events.close()
        return self._saw(builder.result())

    def upload(self, path: str, data: bytes | str) -> None:
        """Write ``data`` (text is UTF-8) to ``path`` in the session's directory."""
        content = data.encode() if isinstance(data, str) else data
        response = self._client._send("PUT", self._file_path(path), content=content)
        _wire.read_json(response)

    def download(self, path: str) -> bytes:
        """The bytes of the file at ``path``."""
        response = self._client._send("GET", self._file_path(path))
        if response.status_code >= 400:
            _wire.read_json(response)
        return response.content

    def delete(self, path: str) -> None:
        """Remove the file (or directory) at ``path``."""
        self._client._do(Call("DELETE", self._file_path(path), _wire.read_nothing))

    def files(self) -> list[SessionFile]:
        """The session's files with their sizes."""
        return self._client._do(Call("GET", self._path("/files"), _read_files))

    def info(self) -> SessionInfo:
        """The session: state, usage so far, expiry."""
        return self._client._do(Call("GET", self._path(), _read_info))


class AsyncSession(_Base):
    """A session of an :class:`~sandlot_client.AsyncSandlot` client: ``async with``."""

    def __init__(self, client: AsyncSandlot, body: dict[str, Any]) -> None:
        super().__init__(body)
        self._client = client

    async def open(self) -> Self:
        """Create the session on the service (once)."""
        if self._id is None:
            call = Call("POST", "/v1/sessions", _read_info, json=self._body)
            self._id = (await self._client._do(call)).id
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session (its interpreter and files go). Idempotent."""
        if self._id is None or self.ended == "closed":
            return
        try:
            await self._client._do(Call("DELETE", self._path(), _wire.read_nothing))
        except SandlotError as exc:
            if exc.status_code not in (404, 410):
                raise
        self.ended = "closed"

    async def run(
        self,
        code: str,
        *,
        on_stdout: Callable[[str], Awaitable[object] | object] | None = None,
        on_stderr: Callable[[str], Awaitable[object] | object] | None = None,
        on_event: Callable[[Event], Awaitable[object] | object] | None = None,
        **options: Any,
    ) -> RunResult:
        """As :meth:`Session.run`, awaited; callbacks may be coroutine functions."""
        from sandlot_client._async_client import _maybe_await, _output

        await self.open()
        builder = RunBuilder()
        events = self._client._events(self._path("/execute"), _turn_body(code, options))
        try:
            async for sse in events:
                event = builder.add(sse)
                self._saw_event(event)
                await _output(event, on_stdout, on_stderr)
                if on_event is not None:
                    await _maybe_await(on_event(event))
                if builder.ended:
                    break
        finally:
            await events.aclose()
        return self._saw(builder.result())

    async def upload(self, path: str, data: bytes | str) -> None:
        content = data.encode() if isinstance(data, str) else data
        response = await self._client._send("PUT", self._file_path(path), content=content)
        _wire.read_json(response)

    async def download(self, path: str) -> bytes:
        response = await self._client._send("GET", self._file_path(path))
        if response.status_code >= 400:
            _wire.read_json(response)
        return response.content

    async def delete(self, path: str) -> None:
        await self._client._do(Call("DELETE", self._file_path(path), _wire.read_nothing))

    async def files(self) -> list[SessionFile]:
        return await self._client._do(Call("GET", self._path("/files"), _read_files))

    async def info(self) -> SessionInfo:
        return await self._client._do(Call("GET", self._path(), _read_info))
