"""The host a request names: one ``Host`` header, and an absolute-form target that agrees.

Routing (app/hostnames.py) reads ``Host``. A request that names its host twice
could be routed by one name here and by the other in a proxy in front, so:

* more than one ``Host`` header: 400;
* an absolute-form target (``GET http://a.example/path``) whose authority differs
  from ``Host`` (or carries userinfo): 400.

uvicorn keeps only the path of an absolute-form target, so :class:`HttpProtocol`
(the server's HTTP/1.1 protocol, uvicorn's httptools one) records the target as
sent in the scope's extensions for :class:`OneHost` to check.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import ApiError, error_response

__all__ = ["TARGET_EXTENSION", "HttpProtocol", "OneHost", "host_problem"]

TARGET_EXTENSION = "sandlot.request_target"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, keeping each request's target as sent."""

    def on_headers_complete(self) -> None:
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[TARGET_EXTENSION] = bytes(self.url)
        super().on_headers_complete()


def _host_port(authority: str, scheme: str) -> tuple[str, int | None] | None:
    """(host, port) of ``host[:port]`` with the scheme's default port; None if malformed."""
    try:
        parts = urlsplit(f"//{authority}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or parts.username is not None or parts.password is not None:
        return None
    return parts.hostname.rstrip("."), port if port is not None else _DEFAULT_PORTS.get(scheme)


def host_problem(hosts: list[str], target: str | None, scheme: str) -> str | None:
    """Why the request's host is ambiguous, or None when it names one host.

    ``hosts`` are the values of its Host headers; ``target`` the request target as
    sent (None when the server didn't record it); ``scheme`` the connection's.
    """
    if len(hosts) > 1:
        return f"send exactly one Host header (this request has {len(hosts)})"
    if target is None or target.startswith("/") or target == "*":
        return None
    url = urlsplit(target)
    if url.scheme.lower() not in _DEFAULT_PORTS or not url.netloc:
        return "the request target must be a path, or an absolute http(s) URL"
    named = _host_port(url.netloc, url.scheme.lower())
    if named is None:
        return "the request target's authority must be host[:port], without userinfo"
    if not hosts or _host_port(hosts[0], url.scheme.lower()) != named:
        return (
            f"the request target names {url.netloc!r} but the Host header "
            f"{'is missing' if not hosts else repr(hosts[0])}; send the same host in both"
        )
    return None


class OneHost:
    """ASGI middleware: 400 when a request names more than one host (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"]
        raw = scope.get("extensions", {}).get(TARGET_EXTENSION)
        target = raw.decode("latin-1") if isinstance(raw, bytes) else None
        problem = host_problem(hosts, target, scope.get("scheme", "http"))
        if problem is None:
            await self.app(scope, receive, send)
            return
        error = ApiError(400, "bad_request", problem, headers={"connection": "close"})
        await error_response(error)(scope, receive, send)
