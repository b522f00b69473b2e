"""What passes through the gate: the guest's request, the response, hop records, outcomes."""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.egress._checks import _is_int, _show

# RFC 9110 token characters, for methods and header names.
_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def _check_token(value: object, field_name: str) -> str:
    if not isinstance(value, str) or value == "" or not set(value) <= _TOKEN_CHARS:
        raise ValueError(f"{field_name} must be a non-empty HTTP token, got {_show(str(value))}")
    return value


@dataclass(frozen=True)
class EgressRequest:
    """One request from the guest.

    ``method`` is uppercased; ``timeout_ms`` None or 0 means the policy's limit (a larger value
    is capped by it). With ``follow_redirects`` False a redirect is the response (a client
    that follows redirects itself sends each hop as a new request, checked anew). Header
    values may not contain CR, LF or NUL and must be Latin-1 encodable (what HTTP/1.1 can
    carry). Raises ValueError naming the offending field; the host
    should hand that message to the guest as the refusal.
    """

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    timeout_ms: int | None = None
    follow_redirects: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.follow_redirects, bool):
            raise ValueError(f"follow_redirects must be a bool, got {self.follow_redirects!r}")
        method = _check_token(self.method, "method").upper()
        if method == "CONNECT":
            # A tunnel would let the guest speak arbitrary protocols through an allowed host.
            raise ValueError("method CONNECT is not supported")
        object.__setattr__(self, "method", method)
        if not isinstance(self.url, str):
            raise ValueError(f"url must be a string, got {type(self.url).__name__}")
        headers: list[tuple[str, str]] = []
        for index, pair in enumerate(self.headers):
            if not (isinstance(pair, tuple | list) and len(pair) == 2):
                raise ValueError(f"headers[{index}] must be a (name, value) pair")
            name = _check_token(pair[0], f"headers[{index}] name")
            value = pair[1]
            if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
                raise ValueError(
                    f"headers[{index}] ({name}) value must be a string without CR, LF or NUL"
                )
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"headers[{index}] ({name}) value must be Latin-1 text") from None
            headers.append((name, value))
        object.__setattr__(self, "headers", tuple(headers))
        if isinstance(self.body, bytearray | memoryview):
            object.__setattr__(self, "body", bytes(self.body))
        elif not isinstance(self.body, bytes):
            raise ValueError(f"body must be bytes, got {type(self.body).__name__}")
        if self.timeout_ms is not None:
            if not _is_int(self.timeout_ms) or self.timeout_ms < 0:
                raise ValueError(
                    f"timeout_ms must be None or a non-negative integer, got {self.timeout_ms!r}"
                )
            if self.timeout_ms == 0:
                object.__setattr__(self, "timeout_ms", None)


@dataclass(frozen=True)
class EgressResponse:
    """The final response (after redirects). ``url`` is the URL that produced it."""

    status: int
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class SubrequestRecord:
    """One hop, for logs and streaming: never headers or bodies.

    ``url`` has no userinfo or fragment; ``status`` is None when no response arrived;
    ``bytes`` is the response body size read; ``ms`` the hop's duration in milliseconds;
    ``allowed`` whether the policy let the hop onto the network; ``reason`` the refusal or
    failure reason, None on success; ``sent_bytes`` what the gate wrote to the connection
    (request line, headers and body, before TLS; 0 when nothing left).
    """

    method: str
    url: str
    status: int | None
    bytes: int
    ms: float
    allowed: bool
    reason: str | None
    sent_bytes: int = 0


@dataclass(frozen=True)
class FetchOutcome:
    """Exactly one of ``response`` and ``error`` is set.

    ``error`` is a message meant for the guest; ``reason`` is the machine reason behind it.
    """

    response: EgressResponse | None
    error: str | None
    records: tuple[SubrequestRecord, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        if (self.response is None) == (self.error is None):
            raise ValueError("FetchOutcome needs exactly one of response and error")
