"""What the client raises.

::

    SandlotError                  an error answer from the API: status_code, code, message
     └── SandlotConnectionError   no (complete) answer: unreachable, timed out, stream cut

What the code you run does wrong is never raised: it comes back as a
``RunResult`` whose ``status`` is not ``ok``.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

__all__ = ["ErrorDetail", "SandlotConnectionError", "SandlotError", "from_httpx", "from_response"]


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    field: str
    message: str


class SandlotError(Exception):
    """An error answer: its HTTP status, the API's ``code`` and ``message`` (what to fix),
    and ``details`` naming the fields. ``status_code`` is None when there was no answer."""

    def __init__(
        self,
        status_code: int | None,
        code: str,
        message: str,
        details: list[ErrorDetail] | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}" if status_code else message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or []


class SandlotConnectionError(SandlotError):
    """The service could not be reached, took too long, or cut a stream short."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(None, code, message)


def from_response(response: httpx.Response) -> SandlotError:
    """The error in an answer (read it first); bodies not in the API's shape keep their text."""
    try:
        error = response.json()["error"]
        details = [ErrorDetail(str(d["field"]), str(d["message"])) for d in error["details"]]
        return SandlotError(
            response.status_code, str(error["code"]), str(error["message"]), details
        )
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:500] or response.reason_phrase
        return SandlotError(response.status_code, "http_error", text)


def from_httpx(exc: httpx.RequestError) -> SandlotConnectionError:
    """httpx's failures to get an answer, as this client's error (raise it ``from exc``)."""
    if isinstance(exc, httpx.TimeoutException):
        return SandlotConnectionError("timeout", f"the service did not answer in time: {exc}")
    return SandlotConnectionError("connection_error", f"{type(exc).__name__}: {exc}")
