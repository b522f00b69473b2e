"""Runs: POST /v1/execute (and the execute_code tool)."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.schemas.common import Flag, LimitsIn, NonEmpty, _Strict
from sandbox import Runtime, Status


class FileIn(_Strict):
    content: str = Field(description="The file's text, or its bytes in base64")
    encoding: Literal["utf-8", "base64"] = Field(
        default="utf-8", description="base64 for binary files"
    )

    def data(self) -> bytes:
        if self.encoding == "utf-8":
            return self.content.encode()
        try:
            return base64.b64decode(self.content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"content is not valid base64: {exc}") from exc


class RunIn(_Strict):
    """What one run of code is: the body of /v1/execute without its transport options."""

    code: str = Field(
        description="Python source, run as main.py in a fresh interpreter; if it ends in an "
        "expression, that value comes back as the result. Top-level await works"
    )
    runtime: Runtime | None = Field(
        default=None, description="Engine to run on; the server's default when omitted"
    )
    limits: LimitsIn = Field(default_factory=LimitsIn)
    allowed_hosts: list[NonEmpty] = Field(
        default_factory=list,
        max_length=100,
        description="Egress allowlist: 'host', 'host:port', '*.example.com'",
    )
    stdin: str | None = Field(default=None, description="What input() reads; none means EOF")
    files: dict[str, str | FileIn] = Field(
        default_factory=dict,
        description="Files written to the working directory first: path -> text, "
        "or {content, encoding: 'base64'}",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment variables: the whole os.environ"
    )
    requirements: list[NonEmpty] = Field(
        default_factory=list,
        max_length=50,
        description="Installed pure-Python packages to load first (pyodide runtime only); "
        "imports of installed packages also load them",
    )
    figure_format: Literal["png", "svg"] = Field(
        default="png",
        description="How matplotlib figures come back in outputs: image/png or image/svg+xml",
    )
    return_files: list[NonEmpty] = Field(
        default_factory=list,
        max_length=20,
        description="Globs over the run's working directory ('*.csv', 'charts/**/*.png'); "
        "the matching files come back in files, within the server's size caps",
    )


class ExecuteRequest(RunIn):
    stream: Flag = Field(
        default=False, description="Stream events over SSE (or send Accept: text/event-stream)"
    )


class ResultOut(BaseModel):
    repr: str
    json_value: Any = Field(default=None, alias="json", serialization_alias="json")
    has_json: bool = False
    truncated: bool = False

    model_config = ConfigDict(populate_by_name=True)


class OutputOut(BaseModel):
    """One rich output: a chart, a table, anything sandlot.display() sent."""

    mime_type: str = Field(description="image/png, image/svg+xml, text/html, ...")
    data: str = Field(description="base64 for image/png, image/jpeg, image/gif; text otherwise")


class FileOut(BaseModel):
    """A file of the run's working directory that matched return_files."""

    path: str = Field(description="Relative to the working directory")
    size: int = Field(description="Bytes")
    mime_type: str
    data: str | None = Field(description="The content in base64; null when truncated")
    truncated: bool = Field(
        default=False, description="Over the size caps: listed without its data"
    )


class ErrorOut(BaseModel):
    type: str
    message: str
    traceback: str = ""


class UsageOut(BaseModel):
    cpu_ms: float
    wall_ms: float
    memory_peak_bytes: int
    subrequests: int
    output_bytes: int


class SubrequestOut(BaseModel):
    method: str
    url: str
    status: int | None
    bytes: int
    ms: float
    allowed: bool
    reason: str | None = None
    # What the egress gate wrote for it: request line, headers and body (bytes).
    sent_bytes: int = 0


class ExecuteResponse(BaseModel):
    id: str
    engine: str
    status: Status
    stdout: str
    stderr: str
    result: ResultOut | None = None
    error: ErrorOut | None = None
    exit_code: int | None = None
    output_truncated: bool = False
    usage: UsageOut
    subrequests: list[SubrequestOut] = Field(default_factory=list)
    outputs: list[OutputOut] = Field(
        default_factory=list, description="Charts, tables and sandlot.display() outputs, in order"
    )
    files: list[FileOut] = Field(
        default_factory=list, description="The files return_files matched, sorted by path"
    )
