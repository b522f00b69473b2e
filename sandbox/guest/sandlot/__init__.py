"""Sandlot's guest API: what code running in the sandbox can import.

    from sandlot import fetch

    r = fetch("https://api.example.com/items", headers={"accept": "application/json"})
    r.raise_for_status()
    items = r.json()

Every request leaves through the host's egress gate: only hosts in the run's
``allowed_hosts`` are reachable, redirects are followed (and checked) by the
gate, and each request counts against the run's ``subrequests`` limit. A
refused or failed request raises :class:`FetchError`. ``urllib.request.urlopen``
goes through the same gate; raw sockets do not exist.

    from sandlot import display

    display(df)  # a table (text/html), an image, a matplotlib figure: one output

:func:`display` sends one rich output back (``outputs`` in the answer, a ``display``
event in the stream); figures open at the end of a run and ``plt.show()`` do it too.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable
from email.message import Message
from typing import Any

from sandlot._outputs import display

__all__ = ["FetchError", "FetchTimeout", "HTTPStatusError", "Response", "display", "fetch"]

# (method, url, headers, body, timeout_ms or 0, follow_redirects)
#   -> (status, final url, headers, body).
# Set by the engine's glue at build time; raises FetchError when the gate refuses.
Transport = Callable[
    [str, str, list[tuple[str, str]], bytes, int, bool],
    tuple[int, str, list[tuple[str, str]], bytes],
]
_transport: Transport | None = None


def _set_transport(transport: Transport) -> None:
    global _transport
    _transport = transport


class FetchError(OSError):
    """The egress gate refused the request or it failed (timeout, DNS, TLS, size cap)."""


class FetchTimeout(FetchError, TimeoutError):
    """The request ran out of time (its ``timeout``, the policy's, or the run's)."""


# How the gate words a timeout (sandbox/egress/_hops.py), whatever the engine's transport.
_TIMED_OUT = "egress failed: timed out"


class HTTPStatusError(Exception):
    """Raised by :meth:`Response.raise_for_status` for a 4xx or 5xx status."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"HTTP {response.status} for {response.url}")
        self.response = response


class Response:
    """A complete HTTP response (the gate reads the whole body, up to its size cap)."""

    def __init__(
        self, status: int, url: str, headers: list[tuple[str, str]], content: bytes
    ) -> None:
        self.status = status
        self.url = url
        self.headers = Message()
        for name, value in headers:
            self.headers[name] = value
        self.content = content

    @property
    def status_code(self) -> int:
        return self.status

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def encoding(self) -> str:
        return self.headers.get_content_charset() or "utf-8"

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding, errors="replace")

    def json(self) -> Any:
        return _json.loads(self.content)

    def raise_for_status(self) -> Response:
        if self.status >= 400:
            raise HTTPStatusError(self)
        return self

    def __repr__(self) -> str:
        return f"<Response [{self.status}] {self.url}>"


def fetch(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | str | None = None,
    *,
    json: Any = None,
    timeout: float | None = None,
    follow_redirects: bool = True,
) -> Response:
    """Send one HTTP request through the egress gate and return the whole response.

    ``body`` may be bytes or str (sent as UTF-8); ``json`` serialises a value and
    sets ``content-type: application/json``. ``timeout`` is in seconds and is
    capped by the run's limits. Raises :class:`FetchError` when the gate refuses
    the request (host not allowed, private address, too many subrequests) or the
    request fails, :class:`FetchTimeout` (a FetchError and a TimeoutError) when it
    runs out of time. Redirects are followed by the gate (``Response.url`` is the
    final URL) unless ``follow_redirects`` is False: then a 3xx is the response.
    """
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if json is not None:
        if body is not None:
            raise ValueError("pass either body or json, not both")
        body = _json.dumps(json)
        if not any(name.lower() == "content-type" for name, _ in pairs):
            pairs.append(("content-type", "application/json"))
    data = body.encode() if isinstance(body, str) else (body or b"")
    timeout_ms = 0 if timeout is None else max(1, int(timeout * 1000))
    if _transport is None:
        raise FetchError("this sandbox has no network transport")
    try:
        status, final_url, response_headers, content = _transport(
            method.upper(),
            url,
            [(str(k), str(v)) for k, v in pairs],
            data,
            min(timeout_ms, 2**32 - 1),
            bool(follow_redirects),
        )
    except FetchError as exc:
        if isinstance(exc, FetchTimeout) or not str(exc).startswith(_TIMED_OUT):
            raise
        raise FetchTimeout(str(exc)) from None
    return Response(status, final_url, response_headers, content)
