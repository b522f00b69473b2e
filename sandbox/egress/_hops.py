"""How one hop of a fetch ends (a reply or a failure) and how failures are worded.

Internal to :class:`Gate`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


class _HopFailure(Exception):
    """A hop ended without a usable response; internal to Gate."""

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        allowed: bool = True,
        status: int | None = None,
        nbytes: int = 0,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.allowed = allowed
        self.status = status
        self.nbytes = nbytes
        self.retriable = retriable
        # Bytes written to the connection before it failed (set by the gate).
        self.sent = 0


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    location: str | None
    # Bytes written to the connection: request line, headers and body.
    sent: int = 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        text = str(exc.reason).lower().replace("_", " ")
        if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
            text = f"certificate verify failed: {exc.verify_message}"
        return text
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _timed_out(total_ms: int) -> _HopFailure:
    return _HopFailure("timeout", f"timed out (total time limit {total_ms} ms)")


def _decode_location(value: str) -> str:
    # http.client decodes header bytes as Latin-1; servers send UTF-8 in practice.
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value
