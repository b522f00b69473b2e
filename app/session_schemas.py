"""Wire models of the sessions API (/v1/sessions; docs/sessions.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas import ExecuteResponse, FileIn, LimitsIn

__all__ = [
    "CloseSessionIn",
    "DownloadFileIn",
    "RunInSessionIn",
    "SessionCreate",
    "SessionExecuteRequest",
    "SessionExecuteResponse",
    "SessionFile",
    "SessionFiles",
    "SessionList",
    "SessionOut",
    "SessionState",
    "SessionTurnIn",
    "SessionTurnLimitsIn",
    "SessionUsage",
    "UploadFileIn",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionTurnLimitsIn(_Strict):
    """Each turn's limits; each omitted field takes the caller's default (as for a run).

    There is no memory_mb here: memory is the session's, for its whole life.
    """

    cpu_ms: int | None = Field(default=None, ge=1, description="Guest CPU time per turn, ms")
    wall_ms: int | None = Field(default=None, ge=1, description="Wall-clock time per turn, ms")
    output_bytes: int | None = Field(
        default=None, ge=1, description="stdout + stderr + outputs per turn, bytes"
    )
    subrequests: int | None = Field(
        default=None, ge=0, description="Outbound HTTP requests per turn"
    )


class SessionCreate(_Strict):
    """A new session: an interpreter kept between calls, with its own files."""

    runtime: Literal["wasmtime", "pyodide"] | None = Field(
        default=None, description="Engine; the server's default when omitted"
    )
    limits: SessionTurnLimitsIn = Field(
        default_factory=SessionTurnLimitsIn,
        description="Each turn's limits, within the key's (as /v1/execute)",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Egress allowlist of every turn: 'host', 'host:port', '*.example.com'",
    )
    memory_mb: int | None = Field(
        default=None,
        ge=64,
        description="The session's memory for its whole life, MiB (the key's memory_mb "
        "limit is the ceiling and the default)",
    )
    idle_timeout_s: int | None = Field(
        default=None,
        ge=1,
        description="Ended after this long without a call (default 600 s; the server's "
        "SANDLOT_SESSION_MAX_IDLE_TIMEOUT_S is the ceiling)",
    )
    max_lifetime_s: int | None = Field(
        default=None,
        ge=1,
        description="Ended this long after it was made, however busy (default and ceiling: "
        "the server's SANDLOT_SESSION_MAX_LIFETIME_S)",
    )


class SessionTurnIn(_Strict):
    """One turn of a session (the fields of /v1/execute but runtime and stream)."""

    code: str = Field(
        description="Python source, run in the session's __main__ like a notebook cell: "
        "globals, imports and files persist; a trailing expression's value is the result"
    )
    limits: LimitsIn = Field(
        default_factory=LimitsIn,
        description="This turn's limits, over the session's (memory_mb is the session's "
        "and can't be set per turn)",
    )
    allowed_hosts: list[str] | None = Field(
        default=None,
        max_length=100,
        description="This turn's egress allowlist; the session's when omitted",
    )
    stdin: str | None = Field(default=None, description="What input() reads; none means EOF")
    files: dict[str, str | FileIn] = Field(
        default_factory=dict,
        description="Files written into the session's directory first (they stay): "
        "path -> text, or {content, encoding: 'base64'}",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables of this turn: all of os.environ"
    )
    requirements: list[str] = Field(
        default_factory=list, max_length=50, description="As for /v1/execute (pyodide only)"
    )
    figure_format: Literal["png", "svg"] = Field(
        default="png",
        description="How matplotlib figures come back in outputs: image/png or image/svg+xml",
    )
    return_files: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Globs over the session's directory; the matching files come back",
    )


class SessionExecuteRequest(SessionTurnIn):
    """One turn: the body of /v1/execute without runtime (the session's)."""

    stream: bool = Field(
        default=False, description="Stream events over SSE (or send Accept: text/event-stream)"
    )


_SESSION_ID = Field(description="The session's id (ses_...), from create_session")


class RunInSessionIn(SessionTurnIn):
    """run_in_session's arguments: the session and one turn."""

    session_id: str = _SESSION_ID


class UploadFileIn(_Strict):
    """upload_file's arguments."""

    session_id: str = _SESSION_ID
    path: str = Field(description="Where in the session's directory: 'data/input.csv'")
    content: str = Field(description="The file's text, or its bytes in base64")
    encoding: Literal["utf-8", "base64"] = Field(
        default="utf-8", description="base64 for binary files"
    )


class DownloadFileIn(_Strict):
    """download_file's arguments."""

    session_id: str = _SESSION_ID
    path: str = Field(description="The file, relative to the session's directory")


class CloseSessionIn(_Strict):
    """close_session's arguments."""

    session_id: str = _SESSION_ID


class SessionUsage(BaseModel):
    """What the session's turns used, summed."""

    turns: int
    cpu_ms: float
    wall_ms: float
    subrequests: int
    output_bytes: int


class SessionOut(BaseModel):
    id: str
    runtime: str
    state: Literal["open", "ended"]
    ended_reason: str | None = Field(
        description="Why it ended: closed, idle_timeout, max_lifetime, shed, disk_quota, "
        "crashed, exited, or the status of the turn that ended it (cpu_limit, wall_limit, "
        "memory_limit, output_limit, subrequest_limit, canceled)"
    )
    busy: bool = Field(description="A turn is running")
    created_at: str
    last_used_at: str
    expires_at: str | None = Field(description="When it ends unless used (idle or lifetime)")
    idle_timeout_s: int
    max_lifetime_s: int
    memory_mb: int
    memory_bytes: int | None = Field(
        description="Its linear memory after the last turn, bytes (the guest's image included)"
    )
    limits: dict[str, int] = Field(description="Each turn's limits")
    allowed_hosts: list[str]
    usage: SessionUsage
    files_bytes: int = Field(
        description="Bytes in the session's files and its /tmp: what disk_quota_bytes counts"
    )
    disk_quota_bytes: int


class SessionList(BaseModel):
    sessions: list[SessionOut] = Field(description="The key's open sessions, oldest first")


class SessionState(BaseModel):
    """Whether the session lives on after a turn."""

    id: str
    state: Literal["open", "ended"]
    ended_reason: str | None = None


class SessionExecuteResponse(ExecuteResponse):
    session: SessionState = Field(
        description="A turn ending anything but ok or error ends the session"
    )


class SessionFile(BaseModel):
    path: str
    size: int = Field(description="Bytes")


class SessionFiles(BaseModel):
    files: list[SessionFile] = Field(description="Regular files, by path (links are left out)")
    total_bytes: int = Field(
        description="Bytes counted against quota_bytes: these files and the session's /tmp"
    )
    quota_bytes: int
