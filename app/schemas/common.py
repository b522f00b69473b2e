"""Shared pieces of the wire models: strict request bases, limits, the error shape."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Request fields the server checks further; in the schema, what it refuses outright.
NonEmpty = Annotated[str, Field(min_length=1)]
# true or false only: "yes", 0 or 1 is a 422 naming the field, not a guess.
Flag = StrictBool


class LimitsIn(_Strict):
    """Per-run limits; each omitted field takes the server default."""

    cpu_ms: int | None = Field(default=None, ge=1, description="Guest CPU time, ms")
    wall_ms: int | None = Field(default=None, ge=1, description="Wall-clock time, ms")
    memory_mb: int | None = Field(default=None, ge=64, description="Guest memory, MiB")
    output_bytes: int | None = Field(
        default=None, ge=1, description="stdout + stderr + outputs, bytes"
    )
    subrequests: int | None = Field(default=None, ge=0, description="Outbound HTTP requests")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    error: ErrorBody
